"""The Reconciler in process, in virtual time: soft and hard states, flapping, and workers
kept across an apply that does not change a map's checks.

Git is real (a bare repo, a clone, :class:`~reconciler.git.mirror.GitSource`); the only fake
is at the Transport seam: :class:`~agentless.testing.FakeTransport` answers each command
with the exit status the test chose, so no check runs for real and no test sleeps on a schedule.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from e2e_support import MAP, command_check, component, find_check, find_component, repo_files
from e2e_support import sample_value as value_of
from gitrepos import ALICE, BareRepo, Clone
from prometheus_client import CollectorRegistry, generate_latest

import reconciler.loop.reconciler as reconciler_module
from agentless.inventory import Host
from agentless.result import CommandResult
from agentless.testing import FakeTransport, reply
from reconciler.clock import VirtualClock, settle
from reconciler.git.mirror import GitSource, GitSourceError
from reconciler.loop.reconciler import Reconciler, ReconcilerOptions
from reconciler.loop.rows import check_rows
from reconciler.model.runtime import PersistenceSettings
from reconciler.server.broker import EventBroker
from reconciler.server.http import Endpoints, HttpEndpoint, build_app
from reconciler.store.sqlite import SqliteStore

REAL_WAIT_S = 30.0
"""Bound on what runs in real time (git in a thread): a hang guard only."""
PROBE = "probe a"


@dataclass
class Script:
    """A FakeTransport handler: each command exits with ``exit_status(command)``."""

    exit_status: Callable[[str], int] = lambda _command: 0

    def __call__(self, host: Host, command: str, timeout: float) -> CommandResult:
        status = self.exit_status(command)
        return reply(host, command, exit_status=status, stdout=f"exit {status}\n", duration_s=0.001)


def calls(transport: FakeTransport) -> Counter[str]:
    """How many times each command was sent."""
    return Counter(transport.commands())


@dataclass
class Harness:
    reconciler: Reconciler
    clock: VirtualClock
    transport: FakeTransport
    clone: Clone
    registry: CollectorRegistry

    def check(self, name: str = "probe", component_id: str = "a") -> dict[str, Any]:
        found = find_check(self.reconciler.snapshot(), component_id, name)
        assert found is not None, self.reconciler.snapshot()
        return found

    def component(self, component_id: str = "a") -> dict[str, Any]:
        found = find_component(self.reconciler.snapshot(), component_id)
        assert found is not None
        return found

    def metrics(self) -> str:
        return generate_latest(self.registry).decode()

    async def push(self, message: str, files: dict[str, str | bytes | None] | None) -> str:
        sha = self.clone.commit(message, author=ALICE, files=files)
        self.clone.push()
        async with asyncio.timeout(REAL_WAIT_S):
            await self.reconciler.fetch_and_reconcile()
        assert self.reconciler.revisions.applied == sha, self.reconciler.snapshot()
        return sha

    async def advance(self, seconds: int, *, each: Callable[[], None] | None = None) -> None:
        """Move virtual time one second at a time, calling ``each`` after every step."""
        for _ in range(seconds):
            await self.clock.advance(1)
            if each is not None:
                each()


@asynccontextmanager
async def running(
    tmp_path: Path,
    checks: list[dict[str, Any]],
    transport: FakeTransport,
    *,
    poll_interval_s: float | None = 3600,
    settings: str | None = None,
    persistence: PersistenceSettings | None = None,
) -> AsyncIterator[Harness]:
    remote = BareRepo.create(tmp_path / "remote.git")
    clone = Clone.create(remote, tmp_path / "work")
    files = repo_files([component("a", checks)])
    if settings is not None:
        files["opsmap.yaml"] = settings
    first = clone.commit("first", author=ALICE, files=files)
    clone.push()
    clock, registry = VirtualClock(), CollectorRegistry()
    store = SqliteStore(tmp_path / "state")
    reconciler = Reconciler(
        source=GitSource(remote.url, cache_dir=tmp_path / "cache", timeout_s=30),
        store=store,
        transport=transport,
        clock=clock,
        metrics_registry=registry,
        options=ReconcilerOptions(
            poll_interval_s=poll_interval_s, persistence=persistence or PersistenceSettings()
        ),
        source_errors=(GitSourceError,),
        rng=random.Random(4),
    )
    stop = asyncio.Event()
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(reconciler.run(stop), name="reconciler")
            async with asyncio.timeout(REAL_WAIT_S):
                await reconciler.applied_event.wait()
            assert reconciler.revisions.applied == first
            try:
                yield Harness(reconciler, clock, transport, clone, registry)
            finally:
                stop.set()
    finally:
        store.close()


def map_worker() -> asyncio.Task[Any]:
    workers = [t for t in asyncio.all_tasks() if t.get_name() == f"map {MAP}" and not t.done()]
    assert len(workers) == 1, workers
    return workers[0]


def test_a_failing_check_goes_soft_then_hard_at_the_retry_interval(tmp_path: Path) -> None:
    script = Script(exit_status=lambda _: 2)
    transport = FakeTransport(script)
    probe = command_check("probe", PROBE, interval=60, timeout=5, attempts=3)
    probe["retry_interval_secs"] = 10

    async def scenario() -> None:
        async with running(tmp_path, [probe], transport) as h:
            seen: list[tuple[str, str, int, str, str]] = []

            def observe() -> None:
                k = h.check()
                step = (k["state"], k["state_type"], k["attempt"], k["hard_state"])
                if not seen or seen[-1][:4] != step:
                    seen.append((*step, h.component()["status"]))

            observe()
            await h.advance(40, each=observe)
            assert seen == [
                ("PENDING", "hard", 0, "PENDING", "unknown"),
                ("CRITICAL", "soft", 1, "PENDING", "unknown"),
                ("CRITICAL", "soft", 2, "PENDING", "unknown"),
                ("CRITICAL", "hard", 3, "CRITICAL", "error"),
            ]
            # retried every ~10 s until hard, then back to the 60 s interval
            assert calls(transport)[PROBE] == 3
            metrics = h.metrics()
            assert value_of(metrics, "opsmap_component_status", status="error") == 1.0
            assert value_of(metrics, "opsmap_check_status", check="probe") == 2.0

            script.exit_status = lambda _: 0
            await h.advance(70)
            assert calls(transport)[PROBE] == 4
            assert (h.check()["hard_state"], h.check()["state_type"]) == ("OK", "hard")
            assert h.component()["status"] == "ok"

    asyncio.run(scenario())


def test_flapping_shows_in_the_snapshot_and_stops_when_the_check_settles(
    tmp_path: Path,
) -> None:
    results = iter([0, 2] * 20)
    script = Script(exit_status=lambda _: next(results, 0))
    transport = FakeTransport(script)
    probe = command_check("probe", PROBE, interval=10, timeout=5, attempts=1)

    async def scenario() -> None:
        async with running(tmp_path, [probe], transport) as h:
            await h.advance(5)
            assert calls(transport)[PROBE] == 1
            assert h.check()["flapping"] is False
            await h.advance(110)  # about ten more runs, alternating OK and CRITICAL
            assert 10 <= calls(transport)[PROBE] <= 14
            assert h.check()["flapping"] is True
            assert value_of(h.metrics(), "opsmap_check_flapping", check="probe") == 1.0

            results_left = list(results)
            assert results_left, "the alternating script ran out too early"
            script.exit_status = lambda _: 0
            await h.advance(300)  # more than a whole window of OK results
            assert h.check()["flapping"] is False
            assert h.check()["hard_state"] == "OK"
            assert value_of(h.metrics(), "opsmap_check_flapping", check="probe") == 0.0

    asyncio.run(scenario())


def test_applying_a_revision_that_keeps_the_checks_keeps_the_worker_and_its_schedule(
    tmp_path: Path,
) -> None:
    script = Script()
    transport = FakeTransport(script)
    checks = [command_check("probe", PROBE, interval=30, timeout=5)]

    async def scenario() -> None:
        async with running(tmp_path, checks, transport) as h:
            await h.advance(6)
            assert calls(transport)[PROBE] == 1
            worker, last_run = map_worker(), h.check()["last_run"]

            # an empty commit, then one that changes the map but none of its checks
            await h.push("nothing changed", None)
            files = repo_files([component("a", checks)])
            files["maps/e2e.yaml"] = str(files["maps/e2e.yaml"]).replace(
                "end-to-end test map", "reworded description"
            )
            await h.push("reword the description", files)
            await settle()
            assert map_worker() is worker, "the map's worker was restarted"
            assert calls(transport)[PROBE] == 1, "an apply ran the check out of schedule"
            assert h.check()["last_run"] == last_run

            await h.advance(35)  # the schedule goes on: the next run at ~30 s
            assert calls(transport)[PROBE] == 2
            assert map_worker() is worker

            changed = [command_check("probe", "probe b", interval=30, timeout=5)]
            await h.push("change the command", repo_files([component("a", changed)]))
            await settle()
            assert map_worker() is not worker, "a changed check must restart the worker"
            await h.advance(35)
            assert calls(transport)["probe b"] >= 1

    asyncio.run(scenario())


def test_the_ssh_connections_gauge_is_the_transports_count(tmp_path: Path) -> None:
    transport = FakeTransport(Script())
    checks = [command_check("probe", PROBE, interval=30, timeout=5)]

    async def scenario() -> list[float | None]:
        async with running(tmp_path, checks, transport) as h:
            before = h.registry.get_sample_value("opsmap_ssh_connections")
            transport.connections = 3
            return [before, h.registry.get_sample_value("opsmap_ssh_connections")]

    assert asyncio.run(scenario()) == [0.0, 3.0]


@pytest.mark.parametrize(
    ("flag", "settings", "in_force"),
    [
        (None, "poll_interval_secs: 45\n", 45),
        (3600, "poll_interval_secs: 45\n", 3600),
        (None, None, 30),
    ],
    ids=["opsmap.yaml", "the flag overrides it", "default"],
)
def test_the_poll_interval_is_the_flag_else_the_applied_settings(
    tmp_path: Path, flag: float | None, settings: str | None, in_force: float
) -> None:
    transport = FakeTransport(Script())
    checks = [command_check("probe", PROBE, interval=30, timeout=5)]

    async def scenario() -> float:
        async with running(
            tmp_path, checks, transport, poll_interval_s=flag, settings=settings
        ) as h:
            return h.reconciler.poll_interval_s()

    assert asyncio.run(scenario()) == in_force


def test_check_states_are_saved_at_the_persistence_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = FakeTransport(Script())
    checks = [command_check("probe", PROBE, interval=30, timeout=5)]
    saves: list[float] = []
    clock_box: list[VirtualClock] = []

    def counted(*args: Any, **kwargs: Any) -> Any:  # the rows of a periodic save, on the loop
        saves.append(clock_box[0].now())
        return check_rows(*args, **kwargs)

    monkeypatch.setattr(reconciler_module, "check_rows", counted)

    async def scenario() -> None:
        every = PersistenceSettings(interval_s=100)
        async with running(tmp_path, checks, transport, persistence=every) as h:
            clock_box.append(h.clock)
            await h.advance(99)
            assert saves == [], "not before the interval"
            await h.advance(2)
            assert saves == [100.0]

    asyncio.run(scenario())


@asynccontextmanager
async def served(reconciler: Reconciler) -> AsyncIterator[Callable[[str], Any]]:
    """The reconciler's HTTP endpoint on this loop (as ``opsmap run`` serves it); yields
    ``get(path)``: one real GET, its body."""
    endpoints = Endpoints(
        registry=reconciler.metrics.registry,
        snapshot=reconciler.view,
        health=reconciler.health,
        readiness=lambda: None,
        fetch_now=reconciler.fetch_now,
        webhook_secret=None,
        count_webhook=lambda _result: None,
    )
    broker = EventBroker()
    endpoint = HttpEndpoint(
        "127.0.0.1",
        0,
        lambda snapshots: build_app(endpoints, broker=broker, snapshots=snapshots),
        snapshot=reconciler.view,
        broker=broker,
        generation=lambda: reconciler.check_views.generation,
    )
    await endpoint.start()
    host, port = endpoint.address
    try:
        async with ClientSession(f"http://{host}:{port}") as session:

            async def get(path: str) -> bytes:
                async with asyncio.timeout(REAL_WAIT_S), session.get(path) as response:
                    assert response.status == 200, path
                    return await response.read()

            yield get
    finally:
        await endpoint.stop()


def test_each_read_over_http_shows_the_checks_as_they_are_now(tmp_path: Path) -> None:
    """A changed check shows in the very next ``/api/v1/status`` and ``/metrics``, read
    right after the change (no snapshot, view or metric line kept stale); a check gone with
    a revision is gone from both."""
    script = Script(exit_status=lambda _: 0)
    transport = FakeTransport(script)
    checks = [command_check("probe", PROBE, interval=10, timeout=5),
              command_check("gone", "probe gone", interval=10, timeout=5)]  # fmt: skip

    async def scenario() -> None:
        async with running(tmp_path, checks, transport) as h, served(h.reconciler) as get:

            async def read() -> tuple[dict[str, Any], str]:
                status = json.loads(await get("/api/v1/status"))
                return status, (await get("/metrics")).decode()

            await h.advance(11)
            status, metrics = await read()
            assert find_check(status, "a", "probe")["hard_state"] == "OK"  # type: ignore[index]
            assert value_of(metrics, "opsmap_check_status", check="probe") == 0.0
            for round_ in range(3):  # flip, and back, and again: each read is current
                failing = round_ % 2 == 0
                script.exit_status = lambda command, f=failing: 2 if f and command == PROBE else 0
                await h.advance(10)
                status, metrics = await read()
                probe = find_check(status, "a", "probe")
                assert probe is not None
                assert probe["hard_state"] == ("CRITICAL" if failing else "OK")
                assert find_component(status, "a")["status"] == (  # type: ignore[index]
                    "error" if failing else "ok"
                )
                assert value_of(metrics, "opsmap_check_status", check="probe") == (
                    2.0 if failing else 0.0
                )
                assert value_of(
                    metrics, "opsmap_component_status", component="a", status="error"
                ) == (1.0 if failing else 0.0)
                assert value_of(metrics, "opsmap_check_status", check="gone") == 0.0

            await h.push("drop a check", repo_files([component("a", checks[:1])]))
            status, metrics = await read()
            assert find_check(status, "a", "gone") is None
            assert find_check(status, "a", "probe") is not None
            assert value_of(metrics, "opsmap_check_status", check="gone") is None
            assert value_of(metrics, "opsmap_check_flapping", check="gone") is None
            assert value_of(metrics, "opsmap_check_status", check="probe") == 2.0

    asyncio.run(scenario())
