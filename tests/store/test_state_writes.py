"""State writes that fail: at the StateStore seam, a real SQLite whose writes fail N times.

The fake is only the connection factory given to :class:`StateStore` (``connect=``): a
``sqlite3.Connection`` subclass that raises SQLite's own ``database or disk is full`` for
the next N writing statements, or reports a commit that went through as failed. Everything
else (the schema, the journal, the outbox, the chain) is the real thing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from reconciler.audit import AuditLog, verify_chain
from reconciler.clock import VirtualClock, settle
from reconciler.store.sqlite import SqliteStore
from reconciler.store.writes import StateWriteError, StateWrites, wait_written

SHA = "d" * 40
FULL = "database or disk is full"
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


@dataclass
class Faults:
    """The next ``writes`` writing statements fail; ``after_commit`` commits fail after
    they went through (as an I/O error reported once the data is on the disk)."""

    writes: int = 0
    after_commit: int = 0
    failed: int = 0

    def connection_class(self) -> type[sqlite3.Connection]:
        faults = self

        class Flaky(sqlite3.Connection):
            def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
                faults.maybe_fail(sql)
                return super().execute(sql, *args)

            def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
                faults.maybe_fail(sql)
                return super().executemany(sql, *args)

            def __exit__(self, *exc: Any) -> Any:
                result = super().__exit__(*exc)
                if exc[0] is None and faults.after_commit > 0:
                    faults.after_commit -= 1
                    faults.failed += 1
                    raise sqlite3.OperationalError("disk I/O error")
                return result

        return Flaky

    def maybe_fail(self, sql: str) -> None:
        if self.writes > 0 and sql.lstrip().upper().startswith(WRITES):
            self.writes -= 1
            self.failed += 1
            raise sqlite3.OperationalError(FULL)


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def store(tmp_path: Path, faults: Faults) -> Any:
    connect: Callable[..., sqlite3.Connection] = partial(
        sqlite3.connect, factory=faults.connection_class()
    )
    opened = SqliteStore(tmp_path / "state", connect=connect)
    counted: list[str] = []
    opened.writes.on_failure = counted.append
    opened.counted = counted  # type: ignore[attr-defined]
    yield opened
    opened.close()


def audit(log: AuditLog, action: str = "action.succeeded") -> Any:
    return log.append(
        action=action,
        actor="sam@example.com",
        target={"request": "requests/r.yaml"},
        details={"n": 1},
        commit=SHA,
        revision=SHA,
    )


def test_a_journal_row_that_cannot_be_written_is_not_there_and_is_written_later(
    store: Any, faults: Faults, caplog: pytest.LogCaptureFixture
) -> None:
    journal = store.journal
    faults.writes = 3
    caplog.set_level(logging.INFO, logger="reconciler.store.writes")
    for _ in range(3):
        with pytest.raises(StateWriteError, match=FULL) as raised:
            journal.started("requests/r.yaml", SHA, "sam", "tina", "rule")
        assert raised.value.what == "journal"
        assert raised.value.delay > 0
        assert journal.get("requests/r.yaml") is None
    problem = store.writes.problem()
    assert problem is not None
    assert "journal" in problem
    assert FULL in problem
    journal.started("requests/r.yaml", SHA, "sam", "tina", "rule")
    entry = journal.get("requests/r.yaml")
    assert entry is not None
    assert entry.state == "running"
    assert store.writes.problem() is None
    assert store.counted == ["journal"] * 3
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, "logged once per reason, not once per attempt"
    assert any("written again" in r.getMessage() for r in caplog.records)


def test_the_journal_connection_syncs_fully(store: Any) -> None:
    assert store.pragma("synchronous", connection="journal") == 2  # FULL
    assert store.pragma("synchronous") == 1  # NORMAL


def test_recovery_retried_after_a_failure_tells_of_every_request_exactly_once(
    store: Any, faults: Faults
) -> None:
    journal = store.journal
    for name in ("a", "b", "c"):
        journal.started(f"requests/{name}.yaml", SHA, "sam", None, "rule")
    told: list[str] = []
    first = True

    def fail_second(path: str) -> None:
        nonlocal first
        told.append(path)
        if first:
            first = False
            faults.writes = 1  # the next mark fails

    with pytest.raises(StateWriteError):
        journal.recover(lambda e: fail_second(e.path))
    journal.recover(lambda e: told.append(e.path))
    assert sorted(told) == ["requests/a.yaml", "requests/b.yaml", "requests/c.yaml"]
    assert {e.state for e in journal.entries()} == {"unknown"}


def test_audit_records_that_cannot_be_stored_are_kept_in_order_and_stored_once(
    store: Any, faults: Faults
) -> None:
    log = AuditLog(store.outbox)
    stored_first = audit(log, "revision.applied")
    assert stored_first is not None
    faults.writes = 4
    assert audit(log, "request.authorized") is None  # kept: 1 failure
    assert audit(log, "action.started") is None  # the first is retried first: 2
    assert log.unstored == 2
    assert log.pending_count() == 3  # stored and not, not delivered
    with pytest.raises(StateWriteError):
        log.flush()  # 3
    with pytest.raises(StateWriteError):
        log.flush()  # 4
    assert log.unstored == 2
    assert log.flush() == 2
    assert log.unstored == 0
    records = log.all_records()
    assert [r.action for r in records] == [
        "revision.applied",
        "request.authorized",
        "action.started",
    ]
    assert [r.seq for r in records] == [1, 2, 3]
    assert len({r.id for r in records}) == 3
    assert verify_chain(records) is None
    assert store.counted == ["audit"] * 4


def test_an_audit_record_whose_commit_was_reported_failed_is_not_stored_twice(
    store: Any, faults: Faults
) -> None:
    log = AuditLog(store.outbox)
    audit(log, "revision.applied")
    faults.after_commit = 1
    assert audit(log, "action.started") is None  # on the disk, but said to have failed
    assert log.unstored == 1
    assert log.flush() == 1  # found by its id: not inserted again
    records = log.all_records()
    assert [r.seq for r in records] == [1, 2]
    assert verify_chain(records) is None


def test_marking_delivered_that_fails_leaves_records_pending(store: Any, faults: Faults) -> None:
    log = AuditLog(store.outbox)
    first = audit(log)
    faults.writes = 1
    with pytest.raises(StateWriteError):
        log.mark_delivered([first.seq])
    assert [r.seq for r in log.pending()] == [first.seq]
    log.mark_delivered([first.seq])
    assert log.pending() == []


def test_meta_and_check_rows_that_cannot_be_written_raise_a_temporary_error(
    store: Any, faults: Faults
) -> None:
    store.set_meta({"k": 1})
    faults.writes = 1
    with pytest.raises(StateWriteError) as raised:
        store.set_meta({"k": 2}, what="cursor")
    assert raised.value.what == "cursor"
    assert store.get_meta() == {"k": 1}
    faults.writes = 1
    with pytest.raises(StateWriteError) as raised:
        store.write_check_rows([])
    assert raised.value.what == "checks"
    assert set(store.writes.failing()) == {"cursor", "checks"}
    store.set_meta({"k": 3}, what="cursor")
    store.write_check_rows([])
    assert store.writes.failing() == {}
    assert store.get_meta() == {"k": 3}


def test_wait_written_retries_with_backoff_in_virtual_time() -> None:
    writes = StateWrites()
    clock = VirtualClock()
    attempts: list[float] = []
    told: list[str] = []

    async def write() -> str:
        attempts.append(clock.now())
        with writes.guard("meta"):
            if len(attempts) <= 3:
                raise sqlite3.OperationalError(FULL)
        return "written"

    async def scenario() -> str:
        task = asyncio.create_task(
            wait_written(write, clock=clock, waiting=lambda e: told.append(e.reason))
        )
        await settle()
        while not task.done():
            await clock.advance(1.0)
        return await task

    assert asyncio.run(scenario()) == "written"
    assert len(attempts) == 4
    assert told == [FULL] * 3
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert all(gap > 0 for gap in gaps), "each retry waited on the clock"
    assert writes.problem() is None
