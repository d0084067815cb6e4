"""What only the PostgreSQL store does: its schema in a database, a database restart, the
fence of a process that lost the database to another, and its URL never showing a
password. Each test has a new database in the session's cluster (``pg_url``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from e2e_support import wait_for
from pgcluster import PASSWORD, Cluster

from reconciler.store.postgres import SCHEMA_VERSION, PostgresStore
from reconciler.store.postgres.schema import MIGRATIONS
from reconciler.store.protocol import Chained, StateError
from reconciler.store.writes import StateWriteError

pytestmark = pytest.mark.timeout(120)

TABLES = ["audit_records", "check_status", "leader_lease", "meta", "owner", "replicas",
          "requests", "schema_version"]  # fmt: skip


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(pg_url)
    yield opened
    opened.close()


def _tables(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' ORDER BY table_name"
        ).fetchall()
    return [str(r[0]) for r in rows]


def _chain(record_id: str) -> Callable[[int, str], Chained]:
    def chain(seq: int, prev_hash: str) -> Chained:
        return Chained(f"hash-{seq}", {"id": record_id, "seq": seq, "prev_hash": prev_hash})

    return chain


def _written(write: Callable[[], object], what: str) -> None:
    """``write()`` again until the database takes it, as the request processor does."""

    def attempt() -> bool:
        write()
        return True

    wait_for(attempt, what=what, timeout=60, interval=0.2, ignore=(StateWriteError,))


# -- the schema ------------------------------------------------------------------------


def test_an_empty_database_is_migrated_once_to_the_current_schema(pg_url: str) -> None:
    assert _tables(pg_url) == []
    first = PostgresStore(pg_url)
    first.set_meta({"kept": 1})
    first.close()
    assert _tables(pg_url) == TABLES
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    assert len(MIGRATIONS) == SCHEMA_VERSION
    again = PostgresStore(pg_url)  # at the current version: nothing is run again
    try:
        assert again.get_meta() == {"kept": 1}
        assert again.term == 2  # each opening is a new term
    finally:
        again.close()


def test_a_database_at_an_older_version_is_migrated_in_order_keeping_its_rows(
    pg_url: str,
) -> None:
    # as the first schema left it
    with psycopg.connect(pg_url, autocommit=True) as conn, conn.transaction():
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("UPDATE schema_version SET version = 1")
        conn.execute("INSERT INTO meta VALUES ('kept', '\"yes\"')")
        conn.execute("UPDATE owner SET term = 7")
        conn.execute("INSERT INTO check_status VALUES ('m', 'c', 'k', 'h', 0, 'hard', 0, 1,"
                     " 'ok', NULL, 100, 0.1, 90, 0, '[0]')")  # fmt: skip
    store = PostgresStore(pg_url)
    try:
        assert store.get_meta() == {"kept": "yes"}
        assert store.term == 8
        # a row from before reachability was kept reads as reached
        assert store.load_check_rows() == [
            ("m", "c", "k", "h", 0, "hard", 0, 1, "ok", None, 100.0, 0.1, 90.0, 0, [0], 1)
        ]
    finally:
        store.close()
    assert _tables(pg_url) == TABLES
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (SCHEMA_VERSION,)
        assert conn.execute("SELECT mode FROM owner").fetchone() == ("single",)


def test_a_newer_schema_is_refused_with_its_version_and_left_alone(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION + 5,))
    with pytest.raises(StateError) as refused:
        PostgresStore(pg_url)
    message = str(refused.value)
    assert "newer OpsMap" in message
    assert f"schema {SCHEMA_VERSION + 5}" in message
    assert f"reads {SCHEMA_VERSION} and older" in message
    assert "\n" not in message
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (
            SCHEMA_VERSION + 5,
        )
        assert conn.execute("SELECT term FROM owner").fetchone() == (1,)  # not taken


def test_a_database_holding_other_tables_is_not_used(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id integer)")
    with pytest.raises(StateError, match=r"not OpsMap's .*invoices"):
        PostgresStore(pg_url)
    assert _tables(pg_url) == ["invoices"]


# -- a database restart ------------------------------------------------------------------


def test_writes_fail_while_the_database_is_down_then_go_through_and_lose_nothing(
    pg_cluster: Cluster, pg_url: str, store: PostgresStore
) -> None:
    journal, outbox = store.journal, store.outbox
    journal.started("requests/a.yaml", "1" * 40, "sam@example.com", None, "r")
    outbox.append("id-1", _chain("id-1"))
    assert journal.count() == 1
    assert outbox.pending_count() == 1

    pg_cluster.stop()
    with pytest.raises(StateWriteError) as failed:
        journal.finished("requests/a.yaml", "succeeded", {"result": "ok"})
    assert failed.value.what == "journal"
    with pytest.raises(StateWriteError, match="audit"):
        outbox.append("id-2", _chain("id-2"))
    with pytest.raises(StateWriteError, match="cursor"):
        store.set_cursor("requests_cursor", "c" * 40)
    with pytest.raises(StateWriteError, match="checks"):
        store.write_check_rows([])
    with pytest.raises(StateWriteError, match="journal"):
        journal.get("requests/a.yaml")  # decides what runs: the caller waits
    assert journal.count() == 1  # the status answers with what it last read
    assert outbox.pending() == []  # delivery waits
    problem = store.writes.problem()
    assert problem is not None
    assert "journal" in problem
    assert "audit" in problem

    pg_cluster.start()
    _written(lambda: journal.finished("requests/a.yaml", "succeeded", {"result": "ok"}),
             "the journal written again")  # fmt: skip
    _written(lambda: outbox.append("id-2", _chain("id-2")), "the audit record stored")
    _written(lambda: store.set_cursor("requests_cursor", "c" * 40), "the cursor stored")
    _written(lambda: store.write_check_rows([]), "the check rows stored")
    assert store.writes.problem() is None

    entry = journal.get("requests/a.yaml")
    assert entry is not None
    assert (entry.state, entry.outcome) == ("succeeded", {"result": "ok"})
    records = outbox.all_records()
    assert records == [
        {"id": "id-1", "seq": 1, "prev_hash": ""},
        {"id": "id-2", "seq": 2, "prev_hash": "hash-1"},
    ]
    assert store.get_cursor("requests_cursor") == "c" * 40


# -- the holder and its term -------------------------------------------------------------


def test_a_process_that_lost_the_database_to_another_writes_no_more(
    pg_cluster: Cluster, pg_url: str, store: PostgresStore
) -> None:
    store.journal.started("requests/a.yaml", "1" * 40, None, None, "r")
    store.outbox.append("id-1", _chain("id-1"))
    # its session (and so its lock) is cut, as by a network partition or a restart
    with psycopg.connect(pg_url, autocommit=True) as admin:
        cut = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
            " AND granted AND database = (SELECT oid FROM pg_database"
            " WHERE datname = current_database())"
        ).fetchall()
    assert cut == [(True,)]

    newer = wait_for(lambda: PostgresStore(pg_url), what="a second process to take over",
                     ignore=(StateError,))  # fmt: skip
    try:
        assert newer.term == store.term + 1
        with pytest.raises(StateWriteError, match="another OpsMap holds the state database"):
            store.journal.finished("requests/a.yaml", "succeeded", {"result": "ok"})
        with pytest.raises(StateWriteError, match="another OpsMap"):
            store.outbox.append("id-2", _chain("id-2"))
        with pytest.raises(StateWriteError, match="another OpsMap"):
            store.set_cursor("requests_cursor", "d" * 40)

        told: list[str] = []
        assert [e.path for e in newer.journal.recover(lambda e: told.append(e.path))] == [
            "requests/a.yaml"
        ]
        assert told == ["requests/a.yaml"]
        newer.outbox.append("id-3", _chain("id-3"))
        assert [r["id"] for r in newer.outbox.all_records()] == ["id-1", "id-3"]
        assert [r["prev_hash"] for r in newer.outbox.all_records()] == ["", "hash-1"]
        entry = newer.journal.get("requests/a.yaml")
        assert entry is not None
        assert entry.state == "unknown"
        assert newer.get_cursor("requests_cursor") is None
    finally:
        newer.close()


# -- the URL -----------------------------------------------------------------------------


def test_a_database_that_cannot_be_reached_is_one_line_without_its_password(
    pg_cluster: Cluster,
) -> None:
    url = pg_cluster.url("absent", tcp=True)
    assert PASSWORD in url
    with pytest.raises(StateError) as refused:
        PostgresStore(url)
    message = str(refused.value)
    assert message.startswith("cannot connect to the state database postgresql://opsmap:***@")
    assert 'database "absent" does not exist' in message
    assert PASSWORD not in message
    assert "\n" not in message
