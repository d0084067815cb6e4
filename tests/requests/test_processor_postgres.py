"""The request pipeline on a real PostgreSQL never waits on the database on the event loop.

:class:`Operations` and its :class:`RequestProcessor` run in process on a
:class:`PostgresStore` in the session's throwaway cluster, with a real git remote and
:class:`FakeTransport` under the real action runner. A hook on psycopg's cursors records
the thread of every statement: none is the loop's. Then the whole cluster is paused
(SIGSTOP to each of its processes: a database that hangs) while a request is merged: the
loop goes on running other work, the request waits and says why, and once the database is
continued it runs, once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from gitrepos import BareRepo, Clone
from pgcluster import Cluster
from prometheus_client import CollectorRegistry
from request_counts import Counts
from requests_e2e_support import (
    DMITRI,
    GROUPS,
    MAP,
    SAM,
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
from reconciler.loop.metrics import Metrics
from reconciler.requests.processor import CURSOR_KEY, RequestProcessor
from reconciler.server.operations import AppliedRevision, Operations
from reconciler.store import calls
from reconciler.store.calls import StateCalls
from reconciler.store.postgres import PostgresStore

pytestmark = pytest.mark.timeout(180)

REAL_WAIT_S = 60.0
"""Bound on what runs in real time (git and the database in threads): a hang guard only."""
OPERATORS = {"group": "trading-ops", "role": "operator", "maps": [MAP]}
INVENTORY = {
    "hosts": [
        {"name": "app-01", "transport": "local", "labels": {"role": "app"}},
        {"name": "app-02", "transport": "local", "labels": {"role": "app"}},
    ]
}
LEFT_RUNNING = "requests/left-running.yaml"


@dataclass
class Statements:
    """Every statement psycopg's cursors ran, with the thread that ran it."""

    seen: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, query: object) -> None:
        with self.lock:
            self.seen.append((threading.current_thread().name, " ".join(str(query).split())))

    def on(self, thread: threading.Thread) -> list[str]:
        with self.lock:
            return [query for name, query in self.seen if name == thread.name]


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Statements:
    recorded = Statements()
    for name in ("execute", "executemany", "copy"):
        original = getattr(psycopg.Cursor, name)

        def hooked(self: Any, query: Any, *args: Any, _original: Any = original, **kw: Any) -> Any:
            recorded.record(query)
            return _original(self, query, *args, **kw)

        monkeypatch.setattr(psycopg.Cursor, name, hooked)
    return recorded


@dataclass
class World:
    remote: BareRepo
    clone: Clone
    base: str
    tmp_path: Path
    sent: list[tuple[str, str]] = field(default_factory=list)

    def merge_request(self, name: str) -> tuple[str, str]:
        path = f"requests/{name}.yaml"
        files = {path: request_yaml("api", "restart")}
        _, sha = self.clone.pull_request(name, files, author=DMITRI, merger=TINA)
        self.clone.push()
        return path, sha

    def handle(self, host: Host, command: str, timeout: float) -> CommandResult:
        self.sent.append((str(host.name), command))
        return reply(host, command, exit_status=0, duration_s=0.001)


@pytest.fixture
def world(tmp_path: Path) -> World:
    remote = BareRepo.create(tmp_path / "remote.git")
    clone = Clone.create(remote, tmp_path / "work")
    base = clone.commit(
        "the map",
        author=SAM,
        files={
            "opsmap.yaml": settings_yaml(),
            "inventory/local.yaml": yaml.safe_dump(INVENTORY),
            "policies/groups.yaml": policy_yaml(groups=GROUPS),
            "policies/trading.yaml": policy_yaml([OPERATORS]),
            f"maps/{MAP}.yaml": map_yaml(
                [component("api", [{"name": "restart", "command": "systemctl restart api"}])]
            ),
        },
    )
    clone.push()
    return World(remote, clone, base, tmp_path)


@dataclass
class Pipeline:
    store: PostgresStore
    source: GitSource
    clock: VirtualClock
    processor: RequestProcessor
    operations: Operations
    outbox: AuditLog


@pytest.fixture
def pipeline(world: World, pg_url: str) -> Iterator[Pipeline]:
    store = PostgresStore(pg_url)
    # a request the last process left running: the first step marks it unknown
    store.journal.started(LEFT_RUNNING, "a" * 40, SAM.email, None, "before")
    source = GitSource(world.remote.url, cache_dir=world.tmp_path / "cache", timeout_s=30)
    clock = VirtualClock()
    state = StateCalls(blocks=store.blocks, writes=store.writes, timeout_s=1.0)
    outbox = AuditLog(store.outbox, clock=clock, deferred=True)
    processor = RequestProcessor(
        source=source,
        journal=store.journal,
        auditor=outbox,
        executor=ActionRunner(FakeTransport(world.handle), clock=clock),
        counters=Counts(),
        cursor=world.base,
        save_cursor=lambda sha: store.set_cursor(CURSOR_KEY, sha),
        applied_revision=lambda: None,
        clock=clock,
        state=state,
    )
    operations = Operations(
        processor=processor,
        applied=AppliedRevision(),
        outbox=outbox,  # type: ignore[arg-type]  # the AuditLog is the outbox protocol's
        publisher_factory=None,
        metrics=Metrics(CollectorRegistry()),
        delivery_errors=(),
        state=state,
    )
    try:
        yield Pipeline(store, source, clock, processor, operations, outbox)
    finally:
        source.close()
        store.close()


async def _until(condition: Callable[[], Any], clock: VirtualClock, what: str) -> None:
    """Advance virtual time (the processor's backoff) until ``condition()`` holds; the
    database and git answer in real time, in threads."""
    deadline = time.monotonic() + REAL_WAIT_S
    while not await condition():
        assert time.monotonic() < deadline, f"never: {what}"
        await clock.advance(0.5)
        await asyncio.sleep(0.02)


def _state_of(store: PostgresStore, path: str) -> Callable[[], Any]:
    async def state() -> str | None:
        entry = await asyncio.to_thread(store.journal.get, path)  # the test's own reads
        return None if entry is None else entry.state

    return state


def test_no_statement_of_the_request_pipeline_runs_on_the_event_loop(
    world: World, pipeline: Pipeline, statements: Statements
) -> None:
    path, merge = world.merge_request("restart")
    pipeline.source.fetch()
    loop_thread: list[threading.Thread] = []

    async def scenario() -> None:
        loop_thread.append(threading.current_thread())
        ops = pipeline.operations
        task = asyncio.create_task(ops.run())
        ops.head_seen(merge)
        succeeded = _state_of(pipeline.store, path)

        async def done() -> bool:
            ops.snapshot_extra()  # the status, as a scrape builds it: from memory
            if await succeeded() != "succeeded" or ops.snapshot_extra()["audit_pending"] != 4:
                return False
            cursor = await asyncio.to_thread(pipeline.store.get_cursor, CURSOR_KEY)
            return bool(cursor == merge)

        await _until(done, pipeline.clock, "the request ran, its records and cursor stored")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    before = len(statements.seen)
    asyncio.run(scenario())
    assert len(statements.seen) > before  # the hook saw the pipeline's statements
    assert statements.on(loop_thread[0]) == []
    assert any(name.startswith(calls.THREAD_NAME) for name, _ in statements.seen[before:])
    assert sorted(world.sent) == [("app-01", "systemctl restart api"),
                                  ("app-02", "systemctl restart api")]  # fmt: skip
    records = pipeline.outbox.all_records()
    assert verify_chain(records) is None
    assert [(r.action, r.target.get("request")) for r in records] == [
        ("action.unknown", LEFT_RUNNING),
        ("request.authorized", path),
        ("action.started", path),
        ("action.succeeded", path),
    ]
    assert pipeline.store.journal.get(LEFT_RUNNING).state == "unknown"  # type: ignore[union-attr]


def test_a_hung_database_holds_the_request_not_the_loop(
    world: World, pipeline: Pipeline, pg_cluster: Cluster
) -> None:
    path, merge = world.merge_request("restart")
    pipeline.source.fetch()
    ticks: list[int] = []
    waits: list[dict[str, Any]] = []

    async def ticker() -> None:
        while True:
            ticks.append(len(ticks))
            await asyncio.sleep(0.01)

    async def scenario() -> None:
        ops, processor = pipeline.operations, pipeline.processor
        task = asyncio.create_task(ops.run())
        recovered = _state_of(pipeline.store, LEFT_RUNNING)

        async def is_unknown() -> bool:
            return await recovered() == "unknown"

        await _until(is_unknown, pipeline.clock, "the left-running request marked unknown")
        beat = asyncio.create_task(ticker())
        with pg_cluster.paused():
            ops.head_seen(merge)
            at_pause = len(ticks)
            while processor.waiting is None:  # the loop turns; the request waits
                ops.snapshot_extra()
                await pipeline.clock.advance(0.5)
                await asyncio.sleep(0.02)
            waits.append(dict(processor.waiting))
            assert len(ticks) > at_pause  # other work went on meanwhile
            assert world.sent == []  # nothing started while the database hung
        succeeded = _state_of(pipeline.store, path)

        async def ran() -> bool:
            if await succeeded() != "succeeded":
                return False
            records = await asyncio.to_thread(pipeline.outbox.all_records)
            return any(r.action == "action.succeeded" for r in records)

        await _until(ran, pipeline.clock, "the request ran once the database answered")
        for running in (beat, task):
            running.cancel()
        await asyncio.gather(beat, task, return_exceptions=True)

    asyncio.run(scenario())
    assert waits[0]["request"] in (None, path)  # None: its journal row not read yet
    assert waits[0]["step"] == "start"
    assert "did not answer" in waits[0]["reason"]
    assert sorted(world.sent) == [("app-01", "systemctl restart api"),
                                  ("app-02", "systemctl restart api")]  # fmt: skip
    entry = pipeline.store.journal.get(path)
    assert entry is not None
    assert entry.state == "succeeded"
    actions = [r.action for r in pipeline.outbox.all_records() if r.target.get("request") == path]
    assert actions == ["request.authorized", "action.started", "action.succeeded"]
