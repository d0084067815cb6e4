"""The state store's contract: what every implementation of
:class:`reconciler.store.protocol.StateStore` (and its Journal and Outbox) must do.

Each test runs once per implementation (:data:`IMPLEMENTATIONS`: SQLite, and PostgreSQL in
a fresh database of the session's throwaway cluster); both pass the same tests unchanged.
An implementation is given as how to open a store for a state directory and how to make
that store's data look written by a newer OpsMap.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from reconciler.store import postgres, sqlite
from reconciler.store.postgres import PostgresStore
from reconciler.store.protocol import Chained, CheckRow, StateError, StateStore
from reconciler.store.sqlite import SqliteStore


@dataclass(frozen=True)
class Implementation:
    name: str
    open: Callable[[Path], StateStore]
    make_newer: Callable[[Path], None]
    """Mark the (closed) store in this directory as written by a newer schema."""


def _sqlite(request: pytest.FixtureRequest) -> Implementation:
    def newer(state_dir: Path) -> None:
        with sqlite3.connect(state_dir / "opsmap.sqlite3") as db:
            db.execute(f"PRAGMA user_version={sqlite.SCHEMA_VERSION + 1}")

    return Implementation("sqlite", SqliteStore, newer)


def _postgres(request: pytest.FixtureRequest) -> Implementation:
    url: str = request.getfixturevalue("pg_url")  # a new database for each test

    def newer(_state_dir: Path) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE schema_version SET version = %s",
                         (postgres.SCHEMA_VERSION + 1,))  # fmt: skip

    return Implementation("postgresql", lambda _state_dir: PostgresStore(url), newer)


IMPLEMENTATIONS = {"sqlite": _sqlite, "postgresql": _postgres}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def impl(request: pytest.FixtureRequest) -> Implementation:
    return IMPLEMENTATIONS[request.param](request)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


class Opened:
    """The store under test, which a test may close and open again (as after a restart)."""

    def __init__(self, impl: Implementation, state_dir: Path) -> None:
        self.impl = impl
        self.state_dir = state_dir
        self.store: StateStore | None = impl.open(state_dir)

    def reopen(self) -> StateStore:
        self.close()
        self.store = self.impl.open(self.state_dir)
        return self.store

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None


@pytest.fixture
def opened(impl: Implementation, state_dir: Path) -> Iterator[Opened]:
    holder = Opened(impl, state_dir)
    yield holder
    holder.close()


@pytest.fixture
def store(opened: Opened) -> StateStore:
    assert opened.store is not None
    return opened.store


def _row(check: str, host: str = "h1", *, state: int | None = 0) -> CheckRow:
    return ("m", "api", check, host, state, "HARD", state, 1, "ok", 1.5, 100.0, 0.2, 90.0, 0,
            [0, 0, 1], 0 if state == 2 else 1)  # fmt: skip


# -- checks ----------------------------------------------------------------------------


def test_check_rows_round_trip_and_a_write_replaces_them_all(
    opened: Opened, store: StateStore
) -> None:
    assert store.load_check_rows() == []
    rows = [_row("http"), _row("tcp", "h2", state=None)]
    store.write_check_rows(rows)
    assert sorted(store.load_check_rows()) == sorted(rows)
    store.write_check_rows([_row("tcp", "h2", state=2)])
    assert store.load_check_rows() == [_row("tcp", "h2", state=2)]
    store = opened.reopen()
    assert store.load_check_rows() == [_row("tcp", "h2", state=2)]


def test_an_update_replaces_only_its_rows_and_removes_the_gone_ones(
    opened: Opened, store: StateStore
) -> None:
    store.write_check_rows([_row("http"), _row("tcp"), _row("tcp", "h2")])
    store.update_check_rows(
        [_row("http", state=2), _row("disk", "h3")], removed=[("m", "api", "tcp", "h1")]
    )
    expected = sorted([_row("http", state=2), _row("tcp", "h2"), _row("disk", "h3")])
    assert sorted(store.load_check_rows()) == expected
    store.update_check_rows([], removed=[("m", "api", "nothing", "h9")])
    assert sorted(opened.reopen().load_check_rows()) == expected


# -- meta and cursors ------------------------------------------------------------------


def test_meta_values_are_merged_and_kept(opened: Opened, store: StateStore) -> None:
    assert store.get_meta() == {}
    store.set_meta({"a": 1, "b": {"c": [1, "x"]}})
    store.set_meta({"a": None, "d": "e"})
    store = opened.reopen()
    assert store.get_meta() == {"a": None, "b": {"c": [1, "x"]}, "d": "e"}


def test_a_cursor_is_none_until_set_and_only_ever_a_string(
    opened: Opened, store: StateStore
) -> None:
    assert store.get_cursor("requests_cursor") is None
    store.set_cursor("requests_cursor", "a" * 40)
    store.set_cursor("other", "b" * 40)
    store.set_meta({"not_a_cursor": 3})
    assert store.get_cursor("not_a_cursor") is None
    store = opened.reopen()
    assert store.get_cursor("requests_cursor") == "a" * 40
    assert store.get_cursor("other") == "b" * 40


# -- the request journal ---------------------------------------------------------------


def test_journal_entries_go_from_running_to_their_outcome(store: StateStore) -> None:
    journal = store.journal
    assert journal.get("requests/a.yaml") is None
    identity: dict[str, object] = {"requester": {"email": "sam@example.com"}}
    journal.started("requests/a.yaml", "1" * 40, "sam@example.com", "ana@example.com", "r1",
                    identity)  # fmt: skip
    running = journal.get("requests/a.yaml")
    assert running is not None
    assert (running.state, running.finished_at, running.outcome) == ("running", None, None)
    assert (running.commit, running.requester, running.approver, running.rule) == (
        "1" * 40, "sam@example.com", "ana@example.com", "r1")  # fmt: skip
    assert running.identity == identity
    journal.finished("requests/a.yaml", "succeeded", {"result": "ok", "hosts": ["h1"]})
    done = journal.get("requests/a.yaml")
    assert done is not None
    assert done.state == "succeeded"
    assert done.outcome == {"result": "ok", "hosts": ["h1"]}
    assert done.finished_at is not None
    assert done.finished_at >= done.created_at

    journal.denied("requests/b.yaml", "2" * 40, None, None, "default deny")
    denied = journal.get("requests/b.yaml")
    assert denied is not None
    assert (denied.state, denied.requester, denied.identity) == ("denied", None, None)
    assert denied.finished_at is not None


def test_journal_lists_oldest_first_and_recent_newest_first(store: StateStore) -> None:
    journal = store.journal
    paths = [f"requests/{n}.yaml" for n in range(4)]
    for path in paths:
        journal.denied(path, "3" * 40, None, None, "rule")
    assert [e.path for e in journal.entries()] == paths
    assert [e.path for e in journal.recent(2)] == paths[::-1][:2]
    journal.denied("requests/new.yaml", "3" * 40, None, None, "rule")
    assert journal.recent(1)[0].path == "requests/new.yaml"  # a write is seen at once


def test_requests_left_running_are_recovered_as_unknown_once(
    opened: Opened, store: StateStore
) -> None:
    store.journal.started("requests/a.yaml", "1" * 40, None, None, "r")
    store.journal.started("requests/b.yaml", "1" * 40, None, None, "r")
    store.journal.finished("requests/b.yaml", "failed", {"result": "failed"})
    store = opened.reopen()  # as after the process died during a.yaml
    told: list[str] = []
    stale = store.journal.recover(lambda entry: told.append(entry.path))
    assert [e.path for e in stale] == told == ["requests/a.yaml"]
    entry = store.journal.get("requests/a.yaml")
    assert entry is not None
    assert entry.state == "unknown"
    assert entry.outcome is not None
    assert entry.outcome["result"] == "unknown"
    failed = store.journal.get("requests/b.yaml")
    assert failed is not None
    assert failed.state == "failed"
    assert store.journal.recover() == []


# -- the audit outbox ------------------------------------------------------------------


def _chain(record_id: str, made: list[tuple[int, str]]) -> Callable[[int, str], Chained]:
    def chain(seq: int, prev_hash: str) -> Chained:
        made.append((seq, prev_hash))
        return Chained(f"hash-{seq}", {"id": record_id, "seq": seq, "prev_hash": prev_hash})

    return chain


def test_outbox_numbers_and_chains_records_with_no_gap(opened: Opened, store: StateStore) -> None:
    made: list[tuple[int, str]] = []
    first = store.outbox.append("id-1", _chain("id-1", made))
    store.outbox.append("id-2", _chain("id-2", made))
    assert first == {"id": "id-1", "seq": 1, "prev_hash": ""}
    store = opened.reopen()
    store.outbox.append("id-3", _chain("id-3", made))
    assert made == [(1, ""), (2, "hash-1"), (3, "hash-2")]
    assert [r["id"] for r in store.outbox.all_records()] == ["id-1", "id-2", "id-3"]


def test_outbox_stores_a_record_once_by_its_id(store: StateStore) -> None:
    made: list[tuple[int, str]] = []
    store.outbox.append("id-1", _chain("id-1", made))
    again = store.outbox.append("id-1", _chain("other", made))
    assert again == {"id": "id-1", "seq": 1, "prev_hash": ""}
    assert made == [(1, "")]  # not chained again
    assert len(store.outbox.all_records()) == 1


def test_outbox_records_stay_pending_until_delivered(opened: Opened, store: StateStore) -> None:
    made: list[tuple[int, str]] = []
    for n in range(1, 5):
        store.outbox.append(f"id-{n}", _chain(f"id-{n}", made))
    assert [r["seq"] for r in store.outbox.pending()] == [1, 2, 3, 4]
    assert [r["seq"] for r in store.outbox.pending(limit=2)] == [1, 2]
    store.outbox.mark_delivered([1, 3])
    store.outbox.mark_delivered([1])  # again: no change
    assert [r["seq"] for r in store.outbox.pending()] == [2, 4]
    assert store.outbox.pending_count() == 2
    store = opened.reopen()
    assert [r["seq"] for r in store.outbox.pending()] == [2, 4]
    assert [r["seq"] for r in store.outbox.all_records()] == [1, 2, 3, 4]


# -- opening ---------------------------------------------------------------------------


def test_a_store_in_use_is_refused(
    impl: Implementation, store: StateStore, state_dir: Path
) -> None:
    with pytest.raises(StateError, match="in use"):
        impl.open(state_dir)


def test_a_store_written_by_a_newer_opsmap_is_refused_and_kept(
    impl: Implementation, opened: Opened, store: StateStore, state_dir: Path
) -> None:
    store.set_meta({"kept": True})
    opened.close()
    impl.make_newer(state_dir)
    with pytest.raises(StateError, match="newer OpsMap"):
        impl.open(state_dir)
    with pytest.raises(StateError, match="newer OpsMap"):  # refused, not migrated or locked
        impl.open(state_dir)
