"""Benchmark: event-stream clients and a burst of state changes, against the loop's lag.

    PYTHONPATH=. python benchmarks/sse_bench.py [--clients 50] [--events 1000] [--components 1000]

Runs the real service (``run_service``: git repo, loop, aiohttp endpoint) on a repo of
``--components`` components (one check each, hourly), opens ``--clients`` streams on
``/api/v1/events`` from a separate process (so that the clients do not share this
process's interpreter lock), publishes ``--events`` check events in batches of 100 per
loop turn (as many state changes landing at once), and prints: the loop's worst lag
while the burst is sent (a task that sleeps 5 ms and measures how late it wakes), how
long until every client has every event, and whether any was dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from reconciler.loop.reconciler import Reconciler
from reconciler.server.connections import Limits
from reconciler.server.http import HttpEndpoint
from reconciler.server.service import run_service

CLIENT = r"""
import http.client, sys, threading, time
host, port, clients, events = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
done, ready = [], threading.Barrier(clients + 1)
def read():
    conn = http.client.HTTPConnection(host, port, timeout=120)
    conn.request("GET", "/api/v1/events")
    response = conn.getresponse()
    response.readline()  # retry:
    ready.wait()
    seen = 0
    while seen < events:
        line = response.readline()
        if not line:
            break
        if line.startswith(b"event: check"):
            seen += 1
    done.append((time.monotonic(), seen))
threads = [threading.Thread(target=read) for _ in range(clients)]
for t in threads: t.start()
ready.wait()
print("ready", flush=True)
for t in threads: t.join()
print(max(t for t, _ in done), min(n for _, n in done), flush=True)
"""


def repo(root: Path, components: int) -> str:
    work = root / "repo"
    (work / "maps").mkdir(parents=True)
    (work / "inventory").mkdir()
    (work / "inventory/local.yaml").write_text(
        yaml.safe_dump({"hosts": [{"name": "bench", "transport": "local", "labels": {"r": "b"}}]})
    )
    check = {"name": "ok", "type": "command", "config": {"command": "true"}, "interval_secs": 3600}
    items = [
        {"id": f"c{i}", "name": f"c{i}", "type": "service", "dependencies": [],
         "hosts": {"labels": {"r": "b"}}, "checks": [check]}
        for i in range(components)
    ]  # fmt: skip
    (work / "maps/bench.yaml").write_text(
        yaml.safe_dump({"name": "bench", "version": "1", "description": "b", "components": items})
    )
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "bench"]):
        subprocess.run(
            ["git", "-c", "user.name=b", "-c", "user.email=b@example.com", *args],
            cwd=work,
            check=True,
        )
    return str(work)


async def poll(condition: Callable[[], bool], *, bound_s: float = 120) -> None:
    for _ in range(int(bound_s / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the benchmark's setup did not finish")


async def bench(args: argparse.Namespace, root: Path) -> None:
    stop = asyncio.Event()
    started: dict[str, Any] = {}
    ready = asyncio.Event()

    def on_started(reconciler: Reconciler, http: HttpEndpoint) -> None:
        started["http"], started["reconciler"] = http, reconciler
        ready.set()

    service = asyncio.ensure_future(
        run_service(
            repo=repo(root, args.components),
            branch="main",
            listen=("127.0.0.1", 0),
            state_dir=root / "state",
            poll_interval_s=3600,
            webhook_secret=None,
            stop=stop,
            on_started=on_started,
            # every client is one process on one address: each stream a share of its own
            limits=Limits(streams_per_client=args.clients),
        )
    )
    await ready.wait()
    reconciler, http = started["reconciler"], started["http"]
    # every check has run once: the burst is measured alone
    await poll(
        lambda: sum(s.last_run is not None for s in reconciler.statuses.values()) >= args.components
    )
    host, port = http.address
    broker = http.broker
    client = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, host, str(port), str(args.clients), str(args.events),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert client.stdout is not None
    await client.stdout.readline()  # every stream is open
    await poll(lambda: broker.subscribers >= args.clients)

    worst = 0.0
    sending = True

    async def sample() -> None:
        nonlocal worst
        while sending:
            before = time.monotonic()
            await asyncio.sleep(0.005)
            worst = max(worst, time.monotonic() - before - 0.005)

    sampler = asyncio.ensure_future(sample())
    began = time.monotonic()
    data = {"map": "bench", "check": "ok", "host": "bench", "state": "CRITICAL"}
    publishing = 0.0
    for start in range(0, args.events, 100):
        before = time.monotonic()
        for n in range(start, min(start + 100, args.events)):
            broker.publish("check", {**data, "component": f"c{n % args.components}"})
        publishing = max(publishing, time.monotonic() - before)
        await asyncio.sleep(0)
    line = (await client.stdout.readline()).decode().split()
    sending = False
    await sampler
    await client.wait()
    last, fewest = float(line[0]), int(line[1])
    print(f"{args.clients} clients, {args.events} events, {args.components} components")
    print(f"worst loop lag while sending: {worst * 1000:.1f} ms")
    print(f"longest batch of 100 publishes: {publishing * 1000:.1f} ms")
    print(f"every client had every event after {(last - began) * 1000:.0f} ms")
    print(f"fewest events a client got: {fewest}; streams dropped: {broker.dropped}")
    stop.set()
    await service


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--components", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(bench(args, Path(tmp)))


if __name__ == "__main__":
    main()
