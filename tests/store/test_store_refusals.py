"""A record a store refuses fails that record only, on both stores.

What the stores cannot take any more is text (every str is encoded: test_store_text.py),
so a refused record here is a number out of the database's range (a real StoreError of a
real SQLite or PostgreSQL), or an outbox that refuses records holding a marker (the seam
of the audit log, over the real outbox).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from any_text import ANY_TEXT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.audit import AuditLog, verify_chain
from reconciler.loop.rows import refused, save_check_rows
from reconciler.store.protocol import CheckRow, StateStore, StoreError
from reconciler.store.writes import StateWriteError

SHA = "c" * 40


def _row(check: str, message: str = "ok", *, attempt: int = 1) -> CheckRow:
    return ("m", "c", check, "h", 0, "HARD", 0, attempt, message, None, 1.0, 0.1, 1.0, 0, [0], 1)


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(bad=st.sets(st.integers(0, 19), max_size=4), message=ANY_TEXT)
def test_a_save_stores_every_row_but_those_the_store_refuses(
    any_store: StateStore, bad: set[int], message: str
) -> None:
    any_store.write_check_rows([_row("gone")])
    rows = [_row(f"k{i}", message, attempt=2**70 if i in bad else 1) for i in range(20)]
    refusals = save_check_rows(any_store, rows, removed=[("m", "c", "gone", "h")])
    assert sorted(row[2] for row, _ in refusals) == sorted(f"k{i}" for i in bad)
    assert all(reason for _, reason in refusals)
    stored = sorted(any_store.load_check_rows())
    assert stored == sorted(r for i, r in enumerate(rows) if i not in bad)


def test_refused_rows_are_reported_and_counted_without_stopping(
    any_store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    counted: list[str] = []
    any_store.writes.on_failure = counted.append
    rows = [_row(f"k{i}", attempt=2**70) for i in range(12)] + [_row("fine")]
    with caplog.at_level(logging.ERROR, "reconciler.loop.rows"):
        refused(save_check_rows(any_store, rows, removed=()), any_store.writes)
    assert counted == ["checks"] * 12
    named = [r for r in caplog.records if r.getMessage().startswith("check state not saved")]
    assert len(named) == 10  # the first ones by name, the rest counted in one line
    assert "2 more" in caplog.text
    assert [r[2] for r in any_store.load_check_rows()] == ["fine"]


class _Refusing:
    """The real outbox, refusing any record whose target holds ``marker`` (as a database
    refuses a value it cannot take); ``everything``: refusing every record."""

    def __init__(self, outbox: Any, marker: str) -> None:
        self._outbox = outbox
        self.marker = marker
        self.everything = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._outbox, name)

    def append(self, record_id: str, chain: Any) -> Any:
        def checked(seq: int, prev_hash: str) -> Any:
            made = chain(seq, prev_hash)
            if self.everything or self.marker in str(made.record["target"]):
                raise StoreError(f"cannot write audit: refused {self.marker}")
            return made

        return self._outbox.append(record_id, checked)


@pytest.mark.parametrize("deferred", [False, True])
def test_a_refused_audit_record_is_replaced_by_a_stand_in_and_the_chain_goes_on(
    any_store: StateStore, deferred: bool
) -> None:
    outbox = _Refusing(any_store.outbox, "poison")
    log = AuditLog(outbox, deferred=deferred)  # type: ignore[arg-type]
    for what in ("before", "poison", "after"):
        log.append(action="request.denied", actor="alice", target={"request": what},
                   details={"rule": what}, commit=SHA, revision=SHA)  # fmt: skip
    log.flush()
    records = log.all_records()
    assert [r.target for r in records] == [{"request": "before"}, {}, {"request": "after"}]
    stand_in = records[1].details
    assert stand_in["stand_in"] is True
    assert "refused poison" in stand_in["reason"]
    assert len(stand_in["sha256"]) == 64
    assert records[1].action == "request.denied"
    assert verify_chain(records) is None
    outbox.everything = True  # a database that refuses everything: kept, retried
    log.append(action="request.denied", actor="a", target={}, details={}, commit=SHA,
               revision=SHA)  # fmt: skip
    with pytest.raises(StateWriteError):
        log.flush()
    assert log.unstored == 1
    outbox.everything = False
    assert log.flush() == 1
    assert verify_chain(log.all_records()) is None
