"""The Reconciler's periodic save when the store refuses a record (in process, virtual time).

A store that refuses one check's row, and then the revisions' meta values, with its own
StoreError (a value it cannot take: the seam is the store's ``update_check_rows`` and
``set_meta``, over a real SQLite store): the save stores the other checks, names the
refused one in the log, and the reconciler goes on running and saving, save after save.
Before, such an error ended the save's task, and the process with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from e2e_support import command_check
from test_inprocess_reconciler import Script, running

from agentless.testing import FakeTransport
from reconciler.model.runtime import PersistenceSettings
from reconciler.store.protocol import CheckId, CheckRow, StoreError
from reconciler.store.sqlite import SqliteStore


def test_a_row_the_store_refuses_fails_alone_and_the_saves_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    update = SqliteStore.update_check_rows
    refused_meta: list[int] = []

    def refusing(
        self: SqliteStore, rows: Sequence[CheckRow], *, removed: Sequence[CheckId]
    ) -> None:
        if any(row[2] == "bad" for row in rows):
            raise StoreError("cannot write checks: a value the database refuses")
        update(self, rows, removed=removed)

    def meta_refused(self: SqliteStore, values: Any, *, what: str = "meta") -> None:
        refused_meta.append(1)
        raise StoreError("cannot write meta: a value the database refuses")

    monkeypatch.setattr(SqliteStore, "update_check_rows", refusing)
    monkeypatch.setattr(SqliteStore, "set_meta", meta_refused)
    transport = FakeTransport(Script())
    checks = [command_check(name, f"probe {name}", interval=5, timeout=2)
              for name in ("bad", "good")]  # fmt: skip

    async def scenario() -> None:
        every = PersistenceSettings(interval_s=10)
        async with running(tmp_path, checks, transport, persistence=every) as h:
            await h.advance(35)  # three saves
            saved = {row[2] for row in h.reconciler.store.load_check_rows()}
            assert saved == {"good"}
            tasks = [t for t in asyncio.all_tasks() if t.get_name() == "reconciler"]
            assert tasks
            assert not tasks[0].done()

    with caplog.at_level(logging.ERROR):
        asyncio.run(scenario())
    assert "check state not saved" in caplog.text
    assert "a value the database refuses" in caplog.text
    assert "revisions not saved" in caplog.text
    assert len(refused_meta) >= 3
