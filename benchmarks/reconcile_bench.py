"""Benchmark: time from a change reaching Git to ``opsmap run`` having applied it.

    PYTHONPATH=.:tests/support python benchmarks/reconcile_bench.py [--pushes 10]
        [--modes webhook,checkout,bare]

Starts ``opsmap run`` (a real process, ``--poll-interval 3600`` so that polling never
helps) on a throw-away map repo whose one host uses the local transport, then for each
mode makes ``--pushes`` changes to the map, one at a time, and measures from the moment the
git command returns until ``/api/v1/status`` (asked every 10 ms) shows the new commit as
``last_applied_revision``:

- ``webhook``: the remote is served by ``git daemon`` (``git://``, not watched); after each
  ``git push`` the benchmark POSTs a signed ``/hooks/git``, as a Git host would;
- ``checkout``: ``--repo`` is a local non-bare checkout, watched for ref changes; the timer
  starts when ``git commit`` returns there (no push, no webhook);
- ``bare``: ``--repo`` is the local path of the bare repo pushed to (watched, no webhook).

Prints min / median / max per mode and whether the goal (every change applied within 2 s)
is met.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from e2e_support import (
    Opsmap,
    Processes,
    command_check,
    component,
    repo_files,
    start_git_daemon,
    start_opsmap,
)
from gitrepos import ALICE, BareRepo, Clone

from reconciler.server.webhook import sign

GOAL_S = 2.0
POLL_S = 0.01
GIVE_UP_S = 60.0
SECRET = "reconcile-bench"
HOOK_BODY = json.dumps({"ref": "refs/heads/main"}).encode()


def map_files(n: int) -> dict[str, str | bytes | None]:
    return repo_files([component("a", [command_check("probe", f"true {n}", interval=3600)])])


def wait_applied(service: Opsmap, sha: str) -> float:
    """Poll the status every 10 ms; the monotonic time at which ``sha`` was seen applied."""
    deadline = time.monotonic() + GIVE_UP_S
    while time.monotonic() < deadline:
        if service.status()["last_applied_revision"] == sha:
            return time.monotonic()
        time.sleep(POLL_S)
    raise SystemExit(f"{sha} not applied after {GIVE_UP_S:g}s:\n{service.tail()}")


def measure(
    service: Opsmap, change: Callable[[int], str], pushes: int, *, after: Callable[[], None]
) -> list[float]:
    """Time each ``change(n)`` (returns the new head) to its application."""
    times = []
    for n in range(1, pushes + 1):
        sha = change(n)
        started = time.monotonic()
        after()
        times.append(wait_applied(service, sha) - started)
    return times


def bench_webhook(work: Path, processes: Processes, pushes: int) -> list[float]:
    remote = BareRepo.create(work / "served" / "remote.git")
    clone = Clone.create(remote, work / "clone")
    first = clone.commit("first", author=ALICE, files=map_files(0))
    clone.push()
    base = start_git_daemon(processes, remote.path.parent, log=work / "git-daemon.log")
    service = start_opsmap(
        processes,
        repo=base + remote.path.name,
        state_dir=work / "state",
        log=work / "opsmap.log",
        poll_interval=3600,
        secret=SECRET,
    )
    wait_applied(service, first)

    def change(n: int) -> str:
        clone.commit(f"change {n}", author=ALICE, files=map_files(n))
        return clone.push()

    def hook() -> None:
        code = service.hook(HOOK_BODY, sign(SECRET.encode(), HOOK_BODY))
        if code != 202:
            raise SystemExit(f"the webhook answered {code}")

    return measure(service, change, pushes, after=hook)


def bench_watched(work: Path, processes: Processes, pushes: int, *, bare: bool) -> list[float]:
    remote = BareRepo.create(work / "remote.git")
    clone = Clone.create(remote, work / "clone")
    first = clone.commit("first", author=ALICE, files=map_files(0))
    clone.push()
    service = start_opsmap(
        processes,
        repo=remote.url if bare else str(clone.path),
        state_dir=work / "state",
        log=work / "opsmap.log",
        poll_interval=3600,
    )
    wait_applied(service, first)

    def change(n: int) -> str:
        sha = clone.commit(f"change {n}", author=ALICE, files=map_files(n))
        return clone.push() if bare else sha

    return measure(service, change, pushes, after=lambda: None)


def report(mode: str, times: list[float]) -> bool:
    met = max(times) <= GOAL_S
    print(
        f"{mode:9s} n={len(times):3d}  min {min(times):.3f}s  median "
        f"{statistics.median(times):.3f}s  max {max(times):.3f}s  "
        f"goal <= {GOAL_S:g}s: {'met' if met else 'NOT met'}"
    )
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pushes", type=int, default=10, help="changes per mode (10)")
    parser.add_argument(
        "--modes", default="webhook,checkout,bare", help="webhook,checkout,bare (all)"
    )
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - {"webhook", "checkout", "bare"}
    if unknown or args.pushes < 1:
        parser.error(f"unknown modes {sorted(unknown)}" if unknown else "--pushes must be >= 1")

    all_met = True
    with tempfile.TemporaryDirectory(prefix="opsmap-reconcile-bench-") as tmp:
        for mode in modes:
            processes = Processes()
            work = Path(tmp) / mode
            try:
                if mode == "webhook":
                    times = bench_webhook(work, processes, args.pushes)
                else:
                    times = bench_watched(work, processes, args.pushes, bare=mode == "bare")
            finally:
                processes.close()
            all_met &= report(mode, times)
    print(f"goal (each change applied within {GOAL_S:g}s): {'met' if all_met else 'NOT met'}")
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
