"""The request processor in process, in virtual time, while the state cannot be written.

Git is real (a bare remote, merges by different people, :class:`GitSource`), SQLite is
real; the fakes sit at two seams only: the connection factory of :class:`StateStore`
(every writing statement fails with SQLite's ``database or disk is full`` while the test
says the disk is full) and the Transport under the real :class:`ActionRunner` (records
each command instead of running it). Retries wait on a :class:`VirtualClock`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from gitrepos import BareRepo, Clone
from request_counts import Counts
from requests_e2e_support import (
    GROUPS,
    MAP,
    SAM,
    SRE_ADMIN,
    TINA,
    component,
    map_yaml,
    policy_yaml,
    request_yaml,
    settings_yaml,
)

from agentless.inventory import Host
from agentless.result import CommandResult
from agentless.testing import FakeTransport, reply
from reconciler.actions import ActionRunner
from reconciler.audit import AuditLog, verify_chain
from reconciler.clock import VirtualClock
from reconciler.git.mirror import GitSource
from reconciler.requests.processor import CURSOR_KEY, RequestProcessor
from reconciler.store.sqlite import SqliteStore

REAL_WAIT_S = 30.0
"""Bound on what runs in real time (git in threads): a hang guard only."""
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


@dataclass
class Disk:
    """While ``full``, every writing statement on the store's connections fails."""

    full: bool = False
    refused: int = 0

    def connect(self) -> Callable[..., sqlite3.Connection]:
        disk = self

        class OnThisDisk(sqlite3.Connection):
            def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
                disk.check(sql)
                return super().execute(sql, *args)

            def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
                disk.check(sql)
                return super().executemany(sql, *args)

        return partial(sqlite3.connect, factory=OnThisDisk)

    def check(self, sql: str) -> None:
        if self.full and sql.lstrip().upper().startswith(WRITES):
            self.refused += 1
            raise sqlite3.OperationalError("database or disk is full")


def succeed_ok(host: Host, command: str, timeout: float) -> CommandResult:
    """Every command succeeds, printing ``ok`` (the FakeTransport records them in order)."""
    return reply(host, command, stdout="ok\n", duration_s=0.001)


async def wait_until(condition: Callable[[], object], clock: VirtualClock, what: str) -> None:
    """Advance virtual time a second at a time (letting git threads run) until true."""
    deadline = time.monotonic() + REAL_WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        await clock.advance(1.0)
        await asyncio.sleep(0.01)


def test_requests_wait_for_the_journal_then_run_once_each_in_order(tmp_path: Path) -> None:
    remote = BareRepo.create(tmp_path / "remote.git")
    clone = Clone.create(remote, tmp_path / "work")
    actions = [{"name": name, "command": f"echo {name}"} for name in ("first", "second")]
    inventory = {"hosts": [{"name": "app-01", "transport": "local", "labels": {"role": "app"}}]}
    base = clone.commit(
        "batch map",
        author=SAM,
        files={
            "opsmap.yaml": settings_yaml(),
            "inventory/local.yaml": yaml.safe_dump(inventory),
            "policies/groups.yaml": policy_yaml(groups=GROUPS),
            "policies/trading.yaml": policy_yaml([SRE_ADMIN]),
            f"maps/{MAP}.yaml": map_yaml([component("batch", actions)]),
        },
    )
    paths = ["requests/first.yaml", "requests/second.yaml"]
    merges = [
        clone.pull_request(
            f"pr-{name}", {path: request_yaml("batch", name)}, author=SAM, merger=TINA
        )[1]
        for name, path in zip(("first", "second"), paths, strict=True)
    ]
    clone.push()
    source = GitSource(remote.url, cache_dir=tmp_path / "cache", timeout_s=30)
    source.fetch()

    disk = Disk()
    store = SqliteStore(tmp_path / "state", connect=disk.connect())
    clock = VirtualClock()
    transport = FakeTransport(succeed_ok)
    journal = store.journal
    outbox = AuditLog(store.outbox)
    counts = Counts()
    processor = RequestProcessor(
        source=source,
        journal=journal,
        auditor=outbox,
        executor=ActionRunner(transport, clock=clock),
        counters=counts,
        cursor=base,
        save_cursor=lambda sha: store.set_meta({CURSOR_KEY: sha}, what="cursor"),
        applied_revision=lambda: base,
        clock=clock,
    )

    async def scenario() -> None:
        disk.full = True
        task = asyncio.create_task(processor.process(merges[-1]))
        await wait_until(lambda: processor.waiting, clock, "the first request to wait")
        waiting = processor.waiting
        assert waiting is not None
        assert waiting["request"] == paths[0]
        assert waiting["commit"] == merges[0]
        assert waiting["step"] == "start"
        assert "database or disk is full" in waiting["reason"]
        refused = disk.refused
        await wait_until(lambda: disk.refused > refused + 2, clock, "retries, with backoff")
        assert transport.commands() == []
        assert journal.entries() == []
        assert processor.cursor == base

        disk.full = False  # space returns
        await wait_until(task.done, clock, "both requests processed")
        await task

    try:
        asyncio.run(scenario())
        assert transport.commands() == ["echo first", "echo second"], "each ran once, in order"
        assert [(e.path, e.state) for e in journal.entries()] == [
            (paths[0], "succeeded"),
            (paths[1], "succeeded"),
        ]
        assert processor.waiting is None
        assert processor.cursor == merges[-1]
        assert store.get_meta()[CURSOR_KEY] == merges[-1]
        assert counts.requests == ["authorized", "succeeded"] * 2
        records = outbox.all_records()
        assert outbox.unstored == 0
        assert verify_chain(records) is None
        for path in paths:
            about = [r.action for r in records if r.target.get("request") == path]
            assert about == ["request.authorized", "action.started", "action.succeeded"]
        assert store.writes.problem() is None
    finally:
        store.close()
