"""The loop's seams (:mod:`reconciler.loop.events`): what it tells its events sink, and
what its phase source and status extras add to the snapshot.

Git is real (a bare repo, a clone, :class:`~reconciler.git.mirror.GitSource`), so is the
state store; the fakes sit at the seams only: a transport whose commands exit as the test
says, a recording events sink, a phase source and status extras of the test's own.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e_support import MAP, command_check, component, find_component, repo_files
from gitrepos import ALICE, BareRepo, Clone
from prometheus_client import CollectorRegistry

from agentless.inventory import Host
from agentless.result import CommandResult
from reconciler.clock import VirtualClock
from reconciler.findings import Finding
from reconciler.git.mirror import GitSource, GitSourceError
from reconciler.loop.reconciler import Reconciler, ReconcilerOptions
from reconciler.loop.view import CheckView
from reconciler.model.status import ComponentStatus
from reconciler.repo.loader import MapRepo
from reconciler.store.sqlite import SqliteStore

REAL_WAIT_S = 30.0
"""Bound on what runs in real time (git in a thread): a hang guard only."""
PROBE = "probe a"


@dataclass
class Exits:
    """A Transport whose commands exit with ``status``."""

    status: int = 0
    connections: int = 0
    """Open connections, as the Transport protocol reports them (a fake holds none)."""

    async def run(self, host: Host, command: str, *, timeout: float) -> CommandResult:  # noqa: ASYNC109 (seam)
        return CommandResult(host.name, command, self.status, "", "", 0.001)

    async def aclose(self) -> None:
        pass


@dataclass
class RecordingEvents:
    """An events sink that keeps every call, in order."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    checks: list[tuple[str, str, str, str]] = field(default_factory=list)
    """Check changes, apart: they come with every retry."""

    def revision_applied(self, sha: str, repo: MapRepo, *, resumed: bool) -> None:
        self.calls.append(("applied", sha, [m.model.name for m in repo.maps], resumed))

    def revision_rejected(self, sha: str, problems: list[Finding]) -> None:
        self.calls.append(("rejected", sha, sorted({f.code for f in problems})))

    def head_seen(self, sha: str) -> None:
        self.calls.append(("head", sha))

    def component_changed(self, map_name: str, component: str, old: str | None, new: str) -> None:
        self.calls.append(("component", map_name, component, old, new))

    def check_changed(self, map_name: str, component: str, check: CheckView) -> None:
        self.checks.append((map_name, component, check.name, check.hard_state))


@dataclass
class Phases:
    now: dict[tuple[str, str], ComponentStatus] = field(default_factory=dict)

    def phases(self) -> Mapping[tuple[str, str], ComponentStatus]:
        return self.now


@dataclass
class Extras:
    values: dict[str, Any] = field(default_factory=dict)

    def snapshot_extra(self) -> dict[str, Any]:
        return dict(self.values)


@dataclass
class Harness:
    reconciler: Reconciler
    clock: VirtualClock
    transport: Exits
    clone: Clone
    events: RecordingEvents
    first: str

    async def push(self, message: str, files: dict[str, str | bytes | None]) -> str:
        sha = self.clone.commit(message, author=ALICE, files=files)
        self.clone.push()
        async with asyncio.timeout(REAL_WAIT_S):
            await self.reconciler.fetch_and_reconcile()
        return sha


@asynccontextmanager
async def running(
    tmp_path: Path,
    *,
    phases: Phases | None = None,
    extras: Extras | None = None,
    restarted: bool = False,
) -> AsyncIterator[Harness]:
    remote = BareRepo.create(tmp_path / "remote.git")
    clone = Clone.create(remote, tmp_path / "work")
    probe = command_check("probe", PROBE, interval=10, timeout=5, attempts=1)
    first = clone.commit("first", author=ALICE, files=repo_files([component("a", [probe])]))
    clone.push()
    runs = 2 if restarted else 1
    for run in range(runs):
        clock, events, transport = VirtualClock(), RecordingEvents(), Exits()
        store = SqliteStore(tmp_path / "state")
        reconciler = Reconciler(
            source=GitSource(remote.url, cache_dir=tmp_path / "cache", timeout_s=30),
            store=store,
            transport=transport,
            clock=clock,
            metrics_registry=CollectorRegistry(),
            options=ReconcilerOptions(poll_interval_s=3600),
            source_errors=(GitSourceError,),
            rng=random.Random(4),
            events=events,
            phases=phases,
            extras=extras,
        )
        stop = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(reconciler.run(stop), name="reconciler")
                async with asyncio.timeout(REAL_WAIT_S):
                    await reconciler.applied_event.wait()
                try:
                    if run == runs - 1:
                        yield Harness(reconciler, clock, transport, clone, events, first)
                finally:
                    stop.set()
        finally:
            store.close()


def scenario(body: Callable[[], Any]) -> None:
    asyncio.run(body())


def test_a_new_revision_is_told_applied_then_each_head_seen(tmp_path: Path) -> None:
    async def body() -> None:
        async with running(tmp_path) as h:
            assert h.events.calls[0] == ("applied", h.first, [MAP], False)
            second = await h.push("second", {"README.md": "more"})
            assert h.events.calls == [
                ("applied", h.first, [MAP], False),
                ("head", h.first),  # the loop's first fetch
                ("applied", second, [MAP], False),
                ("head", second),
            ]

    scenario(body)


def test_a_revision_running_before_a_restart_is_told_resumed(tmp_path: Path) -> None:
    async def body() -> None:
        async with running(tmp_path, restarted=True) as h:
            assert h.events.calls[0] == ("applied", h.first, [MAP], True)

    scenario(body)


def test_an_invalid_revision_is_told_rejected_and_the_last_good_one_kept(tmp_path: Path) -> None:
    async def body() -> None:
        async with running(tmp_path) as h:
            bad = await h.push("bad", {f"maps/{MAP}.yaml": "components: [unclosed"})
            rejected = [c for c in h.events.calls if c[0] == "rejected"]
            assert len(rejected) == 1
            assert rejected[0][1] == bad
            assert rejected[0][2]  # the problems' rule codes
            assert [c for c in h.events.calls if c[0] == "applied"] == [
                ("applied", h.first, [MAP], False)
            ]
            assert h.reconciler.revisions.applied == h.first

    scenario(body)


def test_a_component_status_change_is_told_with_its_old_and_new_status(tmp_path: Path) -> None:
    async def body() -> None:
        async with running(tmp_path) as h:
            for _ in range(15):
                await h.clock.advance(1)
            # the first settled status is a baseline, not a change
            assert [c for c in h.events.calls if c[0] == "component"] == []
            h.transport.status = 2
            for _ in range(15):
                await h.clock.advance(1)
            h.transport.status = 0
            for _ in range(15):
                await h.clock.advance(1)
            assert [c for c in h.events.calls if c[0] == "component"] == [
                ("component", MAP, "a", "ok", "error"),
                ("component", MAP, "a", "error", "ok"),
            ]

    scenario(body)


def test_the_phase_source_and_the_extras_show_in_the_snapshot(tmp_path: Path) -> None:
    phases, extras = Phases(), Extras({"requests": [{"path": "requests/r.yaml"}]})

    async def body() -> None:
        async with running(tmp_path, phases=phases, extras=extras) as h:
            status = h.reconciler.snapshot()
            assert find_component(status, "a")["status"] != "starting"  # type: ignore[index]
            assert status["requests"] == [{"path": "requests/r.yaml"}]
            phases.now[(MAP, "a")] = ComponentStatus.STARTING
            extras.values["requests"] = []
            status = h.reconciler.snapshot()
            assert find_component(status, "a")["status"] == "starting"  # type: ignore[index]
            assert status["requests"] == []
            view = h.reconciler.view()
            assert view.maps[0].components[0].status == "starting"
            assert view.extra == {"requests": []}
            assert view.to_json() == status

    scenario(body)
