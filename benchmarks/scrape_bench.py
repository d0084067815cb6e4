"""Benchmark: reading the state of a fleet: the snapshot, ``/api/v1/status``, ``/metrics``.

    PYTHONPATH=.:tests/support python benchmarks/scrape_bench.py [--hosts 1000]
        [--checks 5] [--repeats 10] [--churn 2500]

Builds, in process and without SSH, the Reconciler of ``opsmap run`` at fleet size: a map
repo of ``--hosts`` hosts and one component with ``--checks`` checks on each (the shape of
``fleet_bench.py``), applied by :meth:`Reconciler.apply`, every check given a result (a
twentieth failing, a few hosts unreachable). Then it measures:

- in process, on this thread: :meth:`Reconciler.view` (the snapshot), the status JSON
  encoded from it (:class:`~reconciler.loop.statusjson.StatusJson`, kept from one read to
  the next as the endpoint keeps it), and the ``/metrics`` exposition from it
  (:func:`~reconciler.loop.metrics.expose` with prometheus_client's ``generate_latest``),
  median and max over ``--repeats``;
- over HTTP, the service's own endpoint (:class:`~reconciler.server.http.HttpEndpoint`
  with the status page's routes, on this process's event loop; the client is a thread
  using ``http.client``): per GET of ``/api/v1/status``, ``/metrics``, the page's
  ``/api/v1/maps/bench`` and ``/readyz`` (the floor: no state read), the latency, the
  server's CPU (the process's CPU less the client thread's own), the loop thread's CPU
  meanwhile (the handler's work on the loop, and the ticker's), and the loop's longest
  stall while the request ran (a ticker on the loop, waking each millisecond, records how
  late it woke: on a loaded machine this includes waiting for a core and for the
  interpreter lock, which the encoding thread holds 5 ms at a time).

Between two requests ``--churn`` checks get a new result (as the scheduler's workers give
them, through the reconciler's result hook), so that no request can be answered from what
the one before it built: 2,500 is what 5,000 checks at 167 checks/s give in the 15 s
between two Prometheus scrapes. ``--churn 0`` measures reads of an unchanged state.

The goals (issue 14, at 1,000 hosts x 5 checks on the 2-core machine): status within
200 ms, ``/metrics`` well under 1 s, the loop blocked a few milliseconds at most per
request.

Figures (defaults, 1,000 hosts x 5 checks, the shared 2-core machine at load average
about 3; median / max of 7, CPU in ms), before the fixes this benchmark prompted and
after (``--churn 0`` in brackets):

=========================  ======================  ==============================
                           before                  after
=========================  ======================  ==============================
view() (on the loop)       45 / 71                 3.9 / 6 (4.3 / 5)
status JSON, CPU           46 / 74                 27 / 48 (6.7 / 56)
metrics exposition, CPU    109 / 121               20 / 161 (10.5 / 149)
GET /api/v1/status         41 / 84 ms, stale (*)   80 / 126 ms (41 / 108)
GET /metrics               124 / 251 ms            33 / 67 ms (28 / 123)
GET /api/v1/maps/bench     48 / 67 ms              11 / 12 ms (11 / 20)
=========================  ======================  ==============================

(*) before, a read within four times the last build's time got the last snapshot again
even when checks had changed since (here, the one the page's read had built). A first
scrape writes every line (the maxima); the loop's CPU per read is now that of the view
(4-13 ms under load, 1-2 ms on a reused snapshot; ``/readyz``, the floor, about 1 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from agentless.result import CheckOutcome, CheckState
from agentless.runner import CheckRun
from agentless.testing import FakeTransport, succeed
from reconciler.clock import RealClock
from reconciler.loop.checkstate import CheckStatus
from reconciler.loop.metrics import expose
from reconciler.loop.reconciler import Reconciler
from reconciler.loop.scheduler import ScheduledCheck
from reconciler.loop.statusjson import StatusJson
from reconciler.policy.visibility import Visibility
from reconciler.repo.loader import load_repo, read_tree
from reconciler.server.broker import EventBroker
from reconciler.server.http import Endpoints, HttpEndpoint, Snapshots, build_app
from reconciler.statuspage import add_routes
from reconciler.store.sqlite import SqliteStore

SHA = "5" * 40
PATHS = ("/api/v1/status", "/metrics", "/api/v1/maps/bench", "/readyz")
TICK_S = 0.001


def write_repo(root: Path, hosts: int, checks: int) -> Path:
    (root / "maps").mkdir(parents=True)
    (root / "inventory").mkdir()
    inventory = {
        "hosts": [
            {"name": f"h{i:04d}", "transport": "local", "labels": {"bench": "yes"}}
            for i in range(hosts)
        ]
    }
    (root / "inventory" / "fleet.yaml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    fleet_map = {
        "name": "bench", "version": "1",
        "components": [{
            "id": "fleet", "name": "Fleet", "type": "host",
            "hosts": {"labels": {"bench": "yes"}},
            "checks": [
                {"name": f"k{j}", "type": "command", "config": {"command": "true"},
                 "interval_secs": 30, "timeout_secs": 20}
                for j in range(checks)
            ],
        }],
    }  # fmt: skip
    (root / "maps" / "bench.yaml").write_text(yaml.safe_dump(fleet_map, sort_keys=False))
    return root


class NoSource:
    """The reconciler is applied a repo directly: it never fetches."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"the benchmark's reconciler does not fetch ({name})")


@dataclass
class Fleet:
    reconciler: Reconciler
    rng: random.Random
    results: int = 0

    def give_results(self, count: int) -> None:
        """``count`` checks get a new result, as a map worker gives it (record, then the
        reconciler's hook)."""
        scheduled = self.reconciler.scheduled
        for check in self.rng.sample(scheduled, min(count, len(scheduled))):
            self.result(check)

    def result(self, check: ScheduledCheck) -> None:
        self.results += 1
        draw = self.rng.random()
        state = CheckState.OK if draw > 0.05 else CheckState.CRITICAL
        unreachable = draw < 0.002
        if unreachable:
            state = CheckState.UNKNOWN
        outcome = CheckOutcome(state, f"{state.name} - result {self.results}", self.rng.random())
        status = self.reconciler.statuses.setdefault(check.key, CheckStatus())
        now = self.reconciler.clock.now()
        duration = self.rng.uniform(0.001, 0.05)
        changed = status.record(outcome, at=now, duration_s=duration, policy=check.policy)
        run = CheckRun(check.target, outcome, duration, time.time(), host_unreachable=unreachable)
        self.reconciler._on_result(check, run, status, changed)  # the workers' hook


def build_fleet(tmp: Path, hosts: int, checks: int) -> Fleet:
    repo = load_repo(read_tree(write_repo(tmp / "repo", hosts, checks)))
    if repo.findings:
        raise SystemExit("\n".join(str(f) for f in repo.findings))
    reconciler = Reconciler(
        source=NoSource(),  # type: ignore[arg-type]
        store=SqliteStore(tmp / "state"),
        transport=FakeTransport(succeed),
        clock=RealClock(),
        metrics_registry=CollectorRegistry(),
    )
    reconciler.apply(SHA, repo)
    fleet = Fleet(reconciler, random.Random(14))
    for check in reconciler.scheduled:
        fleet.result(check)
    return fleet


@dataclass
class Figures:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    stall: list[float] = field(default_factory=list)
    loop_cpu: list[float] = field(default_factory=list)
    size: int = 0

    def line(self, what: str) -> str:
        def ms(values: list[float]) -> str:
            return f"{statistics.median(values) * 1000:7.1f} / {max(values) * 1000:7.1f} ms"

        text = f"{what:24s} time {ms(self.wall)}   cpu {ms(self.cpu)}"
        if self.stall:
            text += f"   loop cpu {ms(self.loop_cpu)}   loop stall {ms(self.stall)}"
        return text + (f"   {self.size / 1e6:.2f} MB" if self.size else "")


def in_process(fleet: Fleet, repeats: int, churn: int) -> None:
    reconciler = fleet.reconciler
    registry = reconciler.metrics.registry
    figures = {name: Figures() for name in ("view()", "status JSON", "metrics exposition")}
    status = StatusJson()  # as the endpoint keeps it
    for _ in range(repeats):
        fleet.give_results(churn)
        snapshot = timed(figures["view()"], reconciler.view)
        body = timed(figures["status JSON"], lambda s=snapshot: status.encode(s))
        figures["status JSON"].size = len(body)
        text = timed(
            figures["metrics exposition"], lambda s=snapshot: expose(registry, s, generate_latest)
        )
        figures["metrics exposition"].size = len(text)
    print("in process (median / max):")
    for name, fig in figures.items():
        print("  " + fig.line(name))


def timed(figures: Figures, work: Callable[[], Any]) -> Any:
    cpu, started = time.process_time(), time.perf_counter()
    result = work()
    figures.wall.append(time.perf_counter() - started)
    figures.cpu.append(time.process_time() - cpu)
    return result


async def over_http(fleet: Fleet, repeats: int, churn: int) -> None:
    reconciler = fleet.reconciler
    endpoints = Endpoints(
        registry=reconciler.metrics.registry,
        snapshot=reconciler.view,
        health=reconciler.health,
        readiness=lambda: None,
        fetch_now=reconciler.fetch_now,
        webhook_secret=None,
        count_webhook=lambda _result: None,
    )
    assert reconciler.repo is not None
    visibility = Visibility(reconciler.repo)

    def app(snapshots: Snapshots) -> web.Application:
        page = PageSource(reconciler, snapshots.current, visibility)
        return build_app(
            endpoints,
            broker=EventBroker(),
            snapshots=snapshots,
            mount=lambda app: add_routes(app, page),  # type: ignore[arg-type]
        )

    endpoint = HttpEndpoint("127.0.0.1", 0, app, snapshot=reconciler.view, broker=EventBroker())
    await endpoint.start()
    stalls: list[float] = []
    ticking = asyncio.create_task(ticker(stalls))
    figures = {path: Figures() for path in PATHS}
    try:
        host, port = endpoint.address
        for path in [p for _ in range(repeats) for p in PATHS]:
            fleet.give_results(churn)
            await asyncio.sleep(0.05)  # the ticker's baseline: an idle loop
            stalls.clear()
            fig = figures[path]
            cpu, loop_cpu = time.process_time(), time.thread_time()
            wall, client_cpu, size = await asyncio.to_thread(get, host, port, path)
            fig.loop_cpu.append(time.thread_time() - loop_cpu)
            fig.cpu.append(time.process_time() - cpu - client_cpu)
            fig.wall.append(wall)
            fig.stall.append(max(stalls, default=0.0))
            fig.size = size
    finally:
        ticking.cancel()
        await endpoint.stop()
    print(f"over HTTP, one GET at a time (median / max of {repeats}):")
    for path, fig in figures.items():
        print("  " + fig.line(path))


async def ticker(stalls: list[float]) -> None:
    """How late the loop wakes a task that sleeps :data:`TICK_S` (what it was kept from)."""
    while True:
        due = time.perf_counter() + TICK_S
        await asyncio.sleep(TICK_S)
        stalls.append(max(0.0, time.perf_counter() - due))


def get(host: str, port: int, path: str) -> tuple[float, float, int]:
    """One GET: its time, this thread's CPU for it, the body's size."""
    cpu, started = time.thread_time(), time.perf_counter()
    connection = http.client.HTTPConnection(host, port, timeout=60)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"{path}: {response.status} {body[:200]!r}")
    finally:
        connection.close()
    return time.perf_counter() - started, time.thread_time() - cpu, len(body)


class PageSource:
    """The status page's source, as :class:`~reconciler.statuspage.live.LoopPageSource`
    reads it: the endpoint's shared snapshot, no audit history, no requests."""

    def __init__(
        self, reconciler: Reconciler, snapshot: Callable[[], Any], visibility: Visibility
    ) -> None:
        self._reconciler, self.snapshot, self._visibility = reconciler, snapshot, visibility

    def branch(self) -> str:
        return "main"

    def repo(self) -> Any:
        return self._reconciler.repo

    def visibility(self) -> Visibility:
        return self._visibility

    def history(self) -> tuple[()]:
        return ()

    def recent_requests(self, limit: int) -> list[object]:
        return []

    def request_target(self, path: str) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--checks", type=int, default=5, help="checks per host (5)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--churn", type=int, default=2500, help="new results between reads")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsmap-scrape-bench-") as tmp:
        started = time.perf_counter()
        fleet = build_fleet(Path(tmp), args.hosts, args.checks)
        count = len(fleet.reconciler.scheduled)
        took = time.perf_counter() - started
        print(f"{args.hosts} hosts x {args.checks} checks = {count} checks, built in "
              f"{took:.1f} s; {args.churn} new results between reads")  # fmt: skip
        in_process(fleet, args.repeats, args.churn)
        asyncio.run(over_http(fleet, args.repeats, args.churn))


if __name__ == "__main__":
    sys.exit(main())
