"""One clock: the timestamps the reconciler stores come from the injected clock's wall."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from audit_support import append

from reconciler.audit import AuditLog
from reconciler.clock import RealClock, VirtualClock
from reconciler.store.sqlite import SqliteStore
from reconciler.store.writes import StateWrites

START = 1_800_000_000.0
SHA = "c" * 40


def test_a_virtual_clock_wall_moves_with_its_monotonic_time() -> None:
    clock = VirtualClock(5.0, wall_start=START)
    assert (clock.now(), clock.wall()) == (5.0, START)
    asyncio.run(clock.advance(90.5))
    assert (clock.now(), clock.wall()) == (95.5, START + 90.5)
    real = RealClock()
    assert real.wall() > START - 10 * 365 * 86400  # an epoch time, not a monotonic one


def test_audit_records_are_stamped_on_the_clock(tmp_path: Path) -> None:
    clock = VirtualClock(wall_start=START)
    store = SqliteStore(tmp_path / "state", clock=clock)
    try:
        log = AuditLog(store.outbox, clock=clock)
        first = append(log, SHA)
        asyncio.run(clock.advance(61.25))
        second = append(log, SHA)
        log.mark_delivered([first.seq])
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "state" / "opsmap.sqlite3") as db:
        rows = db.execute(
            "SELECT seq, created_at, delivered_at FROM audit_records ORDER BY seq"
        ).fetchall()
    assert (first.timestamp, second.timestamp) == (
        "2027-01-15T08:00:00.000Z",
        "2027-01-15T08:01:01.250Z",
    )
    assert rows == [(1, START, START + 61.25), (2, START + 61.25, None)]


def test_journal_times_are_on_the_clock(tmp_path: Path) -> None:
    clock = VirtualClock(wall_start=START)
    store = SqliteStore(tmp_path / "state", clock=clock)
    try:
        journal = store.journal
        journal.started("requests/r.yaml", SHA, "alice", "bob", "rule")
        asyncio.run(clock.advance(7))
        journal.finished("requests/r.yaml", "succeeded", {"ok": True})
        [entry] = journal.recent(5)
    finally:
        store.close()
    assert (entry.created_at, entry.finished_at) == (START, START + 7)


def test_a_failing_write_is_dated_on_the_clock() -> None:
    clock = VirtualClock(wall_start=START)
    writes = StateWrites(clock=clock)
    writes.failed("audit", sqlite3.OperationalError("database or disk is full"))
    assert writes.failing()["audit"]["since"] == START
