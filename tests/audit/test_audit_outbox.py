"""The outbox: chained records committed to SQLite, pending until delivered."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from audit_support import append

from reconciler.audit import GENESIS_HASH, AuditLog, AuditStoreError, verify_chain
from reconciler.store.sqlite import SqliteStore

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


def test_a_closed_database_is_an_audit_error(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state")
    log = AuditLog(store.outbox)
    store.close()
    with pytest.raises(AuditStoreError, match="cannot write an audit record"):
        append(log, SHA)
