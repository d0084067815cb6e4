"""Replicas on one PostgreSQL database (:mod:`reconciler.store.postgres.replicas`): one
leader by a lease with a term, every journal and audit write fenced by it, live replicas
by their heartbeats, hosts shared by rendezvous hashing. A lease "expires" here by moving
its expiry into the past in the database (as after a lease period with no heartbeat, or a
leader whose clock runs slow), so that no test waits for a real period."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from e2e_support import wait_for

from reconciler.store.postgres import PostgresStore
from reconciler.store.postgres.replicas import Replicas
from reconciler.store.protocol import Chained, StateError
from reconciler.store.writes import StateWriteError

pytestmark = pytest.mark.timeout(120)
HOSTS = [f"host-{n:04d}" for n in range(200)]
LONG_LEASE_S = 600.0
"""Long enough that no lease expires by itself during a test."""


@pytest.fixture
def replica(pg_url: str) -> Iterator[Callable[[str], PostgresStore]]:
    """``replica(name)``: a store opened as a replica; all closed after the test."""
    opened: list[PostgresStore] = []

    def open_replica(name: str) -> PostgresStore:
        store = PostgresStore(pg_url, replica=name, lease_s=LONG_LEASE_S)
        opened.append(store)
        return store

    yield open_replica
    for store in opened:
        store.close()


def _replicas(store: PostgresStore) -> Replicas:
    assert store.replicas is not None
    return store.replicas


def _expire_lease(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE leader_lease SET expires_at = now() - interval '1 second'")


def _chain(record_id: str) -> Callable[[int, str], Chained]:
    def chain(seq: int, prev_hash: str) -> Chained:
        return Chained(f"hash-{seq}", {"id": record_id, "seq": seq, "prev_hash": prev_hash})

    return chain


def test_one_leader_and_every_live_replica_shares_the_hosts(
    replica: Callable[[str], PostgresStore],
) -> None:
    a, b, c = replica("a"), replica("b"), replica("c")
    first = _replicas(a).heartbeat()
    assert (first.leader, first.term, first.leader_id) == (True, 1, _replicas(a).id)
    assert first.live == (_replicas(a).id,)
    assert first.mine(HOSTS) == HOSTS  # alone: every host
    second = _replicas(b).heartbeat()
    third = _replicas(c).heartbeat()
    assert not second.leader
    assert not third.leader
    assert (second.term, second.leader_id) == (1, _replicas(a).id)
    assert second.lease_left_s > LONG_LEASE_S - 60
    standings = [_replicas(s).heartbeat() for s in (a, b, c)]
    assert [s.leader for s in standings] == [True, False, False]
    assert {s.live for s in standings} == {tuple(sorted(_replicas(s).id for s in (a, b, c)))}
    shares = [s.mine(HOSTS) for s in standings]
    assert sorted(h for share in shares for h in share) == HOSTS  # each host once
    assert all(share for share in shares)
    assert _replicas(a).leader_term() == 1
    assert _replicas(b).leader_term() is None


def test_only_the_leader_writes_requests_and_audit(
    replica: Callable[[str], PostgresStore],
) -> None:
    a, b = replica("a"), replica("b")
    _replicas(a).heartbeat()
    _replicas(b).heartbeat()
    a.journal.started("requests/x.yaml", "1" * 40, None, None, "r")
    a.outbox.append("id-1", _chain("id-1"))
    with pytest.raises(StateWriteError, match="does not lead"):
        b.journal.denied("requests/y.yaml", "1" * 40, None, None, "r")
    with pytest.raises(StateWriteError, match="does not lead"):
        b.outbox.append("id-2", _chain("id-2"))
    with pytest.raises(StateWriteError, match="does not lead"):
        b.set_cursor("requests_cursor", "a" * 40)
    b.write_check_rows([])  # observations are every replica's (not fenced)
    assert b.journal.get("requests/x.yaml") is not None  # every replica reads


def test_a_new_leader_fences_the_old_marks_its_request_unknown_once_and_chains_on(
    pg_url: str, replica: Callable[[str], PostgresStore]
) -> None:
    a, b = replica("a"), replica("b")
    _replicas(a).heartbeat()
    _replicas(b).heartbeat()
    a.journal.started("requests/x.yaml", "1" * 40, None, None, "r")
    a.outbox.append("id-1", _chain("id-1"))
    a.outbox.append("id-2", _chain("id-2"))

    _expire_lease(pg_url)  # a missed its heartbeats: the database gives the lease away
    taken = _replicas(b).heartbeat()
    assert (taken.leader, taken.term, taken.leader_id) == (True, 2, _replicas(b).id)
    assert _replicas(a).leader_term() == 1  # a's own clock has not caught up yet…
    with pytest.raises(StateWriteError, match="does not lead"):  # …the database fences it
        a.journal.finished("requests/x.yaml", "succeeded", {"result": "ok"})
    with pytest.raises(StateWriteError, match="does not lead"):
        a.outbox.append("id-3", _chain("id-3"))

    told: list[str] = []
    assert [e.path for e in b.journal.recover(lambda e: told.append(e.path))] == ["requests/x.yaml"]
    assert told == ["requests/x.yaml"]
    assert b.journal.recover() == []
    assert a.journal.recover() == []  # nothing is reported twice, by either
    b.outbox.append("id-4", _chain("id-4"))
    records = b.outbox.all_records()
    assert [r["id"] for r in records] == ["id-1", "id-2", "id-4"]
    assert [r["prev_hash"] for r in records] == ["", "hash-1", "hash-2"]  # one chain

    again = _replicas(a).heartbeat()  # a learns it is a follower now
    assert (again.leader, again.term, again.leader_id) == (False, 2, _replicas(b).id)
    assert _replicas(a).leader_term() is None


def test_a_leader_whose_heartbeats_stop_stops_leading_on_its_own_clock(pg_url: str) -> None:
    store = PostgresStore(pg_url, replica="a", lease_s=1.0)
    try:
        assert _replicas(store).heartbeat().leader
        store.journal.denied("requests/x.yaml", "1" * 40, None, None, "r")
        wait_for(lambda: _replicas(store).leader_term() is None,
                 what="one lease period without a heartbeat")  # fmt: skip
        with pytest.raises(StateWriteError, match="does not lead"):
            store.journal.denied("requests/y.yaml", "1" * 40, None, None, "r")
        renewed = _replicas(store).heartbeat()  # nobody else took it: a new term
        assert (renewed.leader, renewed.term) == (True, 2)
        store.journal.denied("requests/y.yaml", "1" * 40, None, None, "r")
    finally:
        store.close()


def test_a_leader_that_leaves_hands_over_at_the_next_heartbeat(
    replica: Callable[[str], PostgresStore],
) -> None:
    a, b = replica("a"), replica("b")
    _replicas(a).heartbeat()
    _replicas(b).heartbeat()
    a_id = _replicas(a).id
    a.close()  # a clean stop: the lease is given back, the row removed
    taken = _replicas(b).heartbeat()
    assert (taken.leader, taken.term) == (True, 2)
    assert a_id not in taken.live
    assert taken.mine(HOSTS) == HOSTS
    b.journal.denied("requests/y.yaml", "1" * 40, None, None, "r")


def test_replicas_and_a_single_process_exclude_each_other(
    pg_url: str, replica: Callable[[str], PostgresStore]
) -> None:
    a = replica("a")
    with pytest.raises(StateError, match="in use"):
        PostgresStore(pg_url)
    a.close()
    single = PostgresStore(pg_url)
    try:
        with pytest.raises(StateError, match="in use by a single OpsMap"):
            PostgresStore(pg_url, replica="b")
    finally:
        single.close()


def test_a_replica_that_lost_its_session_is_fenced_once_a_single_process_took_over(
    pg_url: str, replica: Callable[[str], PostgresStore]
) -> None:
    a = replica("a")
    _replicas(a).heartbeat()
    a.journal.denied("requests/x.yaml", "1" * 40, None, None, "r")
    with psycopg.connect(pg_url, autocommit=True) as admin:  # a's lock goes with its session
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
            " AND granted AND database = (SELECT oid FROM pg_database"
            " WHERE datname = current_database())"
        )
    single = wait_for(lambda: PostgresStore(pg_url), what="a single process to take over",
                      ignore=(StateError,))  # fmt: skip
    try:
        with pytest.raises(StateWriteError, match="another OpsMap holds"):
            a.journal.denied("requests/y.yaml", "1" * 40, None, None, "r")
        single.journal.denied("requests/z.yaml", "1" * 40, None, None, "r")
        assert [e.path for e in single.journal.entries()] == [
            "requests/x.yaml",
            "requests/z.yaml",
        ]
    finally:
        single.close()
