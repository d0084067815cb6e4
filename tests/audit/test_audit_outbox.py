"""The outbox: chained records committed to SQLite, pending until delivered."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from audit_support import append

from reconciler.audit import GENESIS_HASH, AuditLog, verify_chain
from reconciler.store.sqlite import SqliteStore
from reconciler.store.writes import StateWriteError

SHA = "c" * 40


def test_records_survive_reopening_the_state_and_the_chain_continues(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state")
    first = [append(AuditLog(store.outbox), SHA) for _ in range(3)]
    store.close()  # nothing else committed them: append did

    store = SqliteStore(tmp_path / "state")
    log = AuditLog(store.outbox)
    assert log.all_records() == first
    fourth = append(log, SHA, action="action.failed")
    assert fourth.seq == 4
    assert fourth.prev_hash == first[-1].hash
    assert first[0].prev_hash == GENESIS_HASH
    assert [r.seq for r in log.all_records()] == [1, 2, 3, 4]
    assert verify_chain(log.all_records()) is None
    store.close()


def test_records_are_committed_before_append_returns(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state")
    record = append(AuditLog(store.outbox), SHA)
    other = sqlite3.connect(store.path)  # a second connection sees only committed rows
    try:
        rows = other.execute("SELECT seq, id, hash FROM audit_records").fetchall()
    finally:
        other.close()
        store.close()
    assert rows == [(1, record.id, record.hash)]


def test_pending_until_delivered(log: AuditLog) -> None:
    records = [append(log, SHA) for _ in range(4)]
    assert log.pending() == records
    assert log.pending_count() == 4
    log.mark_delivered([1, 3])
    assert [r.seq for r in log.pending()] == [2, 4]
    assert log.pending_count() == 2
    log.mark_delivered([2, 4, 99])
    assert log.pending() == []
    assert log.pending_count() == 0
    assert len(log.all_records()) == 4


def test_ids_are_unique(log: AuditLog) -> None:
    ids = {append(log, SHA).id for _ in range(50)}
    assert len(ids) == 50


def test_pending_and_mark_delivered_from_a_worker_thread(log: AuditLog) -> None:
    for _ in range(3):
        append(log, SHA)

    async def deliver() -> int:
        records = await asyncio.to_thread(log.pending)
        await asyncio.to_thread(log.mark_delivered, [r.seq for r in records])
        return await asyncio.to_thread(log.pending_count)

    assert asyncio.run(deliver()) == 0


def test_timestamps_are_utc_iso8601(log: AuditLog) -> None:
    stamp = append(log, SHA).timestamp
    assert stamp.endswith("Z")
    assert stamp[10] == "T"


def test_a_database_that_refuses_every_record_keeps_them_to_retry(tmp_path: Path) -> None:
    """A closed database refuses the record and its stand-in alike: nothing is dropped,
    the record is kept and the flush is a write to retry (not the process's end)."""
    store = SqliteStore(tmp_path / "state")
    log = AuditLog(store.outbox)
    store.close()
    kept = log.append(action="action.succeeded", actor="a", target={}, details={},
                      commit=SHA, revision=SHA)  # fmt: skip
    assert kept is None
    assert log.unstored == 1
    with pytest.raises(StateWriteError, match="cannot write an audit record"):
        log.flush()


def test_a_deferred_log_keeps_appends_in_order_until_a_flush_in_a_thread_stores_them(
    tmp_path: Path,
) -> None:
    """The outbox of a store that blocks: an append on the loop only keeps the record (and
    says so); a flush from another thread stores everything kept, chained in append order,
    while appends go on meanwhile without waiting for it."""
    store = SqliteStore(tmp_path / "state")
    log = AuditLog(store.outbox, deferred=True)
    told: list[int] = []
    log.on_kept = lambda: told.append(log.unstored)
    kept = [
        log.append(action="revision.applied", actor="opsmap", target={"revision": str(n)},
                   details={}, commit=SHA, revision=None)
        for n in range(3)
    ]  # fmt: skip
    assert kept == [None, None, None]
    assert told == [1, 2, 3]
    assert log.all_records() == []  # nothing stored yet

    async def flush_while_appending() -> int:
        flushing = asyncio.create_task(asyncio.to_thread(log.flush))
        log.append(action="revision.applied", actor="opsmap", target={"revision": "3"},
                   details={}, commit=SHA, revision=None)  # fmt: skip
        return await flushing + log.flush()

    try:
        assert asyncio.run(flush_while_appending()) == 4
        records = log.all_records()
        assert [r.target["revision"] for r in records] == ["0", "1", "2", "3"]
        assert verify_chain(records) is None
        assert log.unstored == 0
    finally:
        store.close()
