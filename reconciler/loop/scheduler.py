"""Running every check of a map at its interval: one worker per map, one task per host.

A :class:`MapWorker` owns one task per host inside a TaskGroup. Every check of the host
keeps its own due time; the host task sleeps (on the injected
:class:`~reconciler.clock.Clock`) until the earliest due check that is not running, then
starts, in one tick, every check of the host that is not running and falls due within
its :func:`coalescing_window`. The SSH transport sends the commands of one host that
arrive in one tick as one batch, one frame on one shell (:mod:`agentless.ssh.transport`):
so a host costs one frame per round, not one per check, and the frames were the larger
part of the reconciler's CPU per check at fleet size (issue 14).

Each check runs as its own task: a slow one (a long command, a timeout) holds back
neither its siblings nor other hosts, and a check still running is never started again.
When a check finishes it records its result in its
:class:`~reconciler.loop.checkstate.CheckStatus`, takes its next due time and wakes the
host task if that is sooner than what the host waits for.

**Staying together.** The next due time is the round's start plus the next delay (the
retry interval while a problem is soft) stretched by a jitter factor drawn once per round,
so checks of one host with the same interval that ran together are due together again,
run after run; checks with other intervals meet whenever they fall within the window. A
check out of step with its siblings (it retried alone, or was added later) takes a
same-delay sibling's due time when that lies within its own jitter band: a move the
jitter could have drawn, which brings it back into the host's frame.

**Bounds.** The semaphore bounds the *hosts* of a map with checks in flight, not the
checks: a host takes one slot for as long as any of its checks runs, so a round starts
whole or waits whole (its checks still reach the transport in one tick). The transport
bounds the commands (``max_inflight``, ``per_host_limit``) and the handshakes
(``max_connecting``) itself; the default here, :data:`MAX_HOSTS_IN_FLIGHT`, is above a
1,000-host map, so at fleet size it adds no lag (64 checks at once capped a map at
64 / latency checks per second, which 1,000 hosts x 5 checks / 30 s outgrew) and only bites
when over a thousand hosts of one map hang at once.

**First runs** of new hosts are spread over :meth:`MapWorker.first_run_spread_s`, so a
fresh start with 1,000 hosts does not open 1,000 connections in a few seconds; the new
checks of one host share their instant (one frame). A check whose status has a last run
resumes its schedule.

The lag reported to ``on_lag`` is due time to start (what the loop and the slots cost);
a check started early by the window counts 0.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from agentless.inventory import Host
from agentless.runner import CheckRun, CheckTarget
from reconciler.clock import Clock
from reconciler.logcontext import context
from reconciler.loop.checkstate import CheckPolicy, CheckStatus

log = logging.getLogger(__name__)

JITTER = 0.1
"""Each interval is stretched or shrunk by up to this fraction, so hosts spread out."""
FIRST_RUN_SPREAD_S = 5.0
"""New checks first run within at least this many seconds (or their interval)."""
FIRST_RUNS_PER_S = 50.0
"""New hosts are spread so that about this many start per second: connect plus a first
batch to 50 local sshd took about 1 s with the transport's 32 handshakes at once
(:mod:`agentless.ssh.transport`), so 1,000 new hosts take 20 s, not a storm in 5 s."""
COALESCE_MAX_S = 1.0
COALESCE_FRACTION = 0.05
MAX_HOSTS_IN_FLIGHT = 1024
"""Default bound on the hosts of one map with checks in flight (see the module docstring)."""


class CheckKey(NamedTuple):
    map: str
    component: str
    check: str
    host: str


@dataclass(frozen=True, slots=True)
class ScheduledCheck:
    """One check of a component on one of its hosts, as a revision defines it."""

    key: CheckKey
    target: CheckTarget
    policy: CheckPolicy

    @property
    def host(self) -> Host:
        return self.target.host


RunCheck = Callable[[ScheduledCheck], Awaitable[CheckRun]]
OnResult = Callable[[ScheduledCheck, CheckRun, CheckStatus, bool], None]


def coalescing_window(delay: float) -> float:
    """How early a check may start to share its host's frame: min(1 s, 5% of its delay).

    5% is half the jitter each run gets anyway, so an early start keeps the interval
    within what the schedule already allows; 1 s caps it for long intervals (an hourly
    check starts at most a second early, not three minutes) and is the size of the lag
    the fleet tolerates (issue 14: p99 <= 1 s), so a check pulled in is never further off
    its due time than a late one may be.
    """
    return min(COALESCE_MAX_S, COALESCE_FRACTION * delay)


@dataclass(eq=False, slots=True)
class _Due:
    """One check of a host: when it is due next, and whether it runs now."""

    check: ScheduledCheck
    status: CheckStatus
    due: float
    running: bool = False

    @property
    def delay(self) -> float:
        return self.status.next_delay(self.check.policy)


@dataclass(eq=False, slots=True)
class _Host:
    """The checks of one host, how many run, and how to wake its task."""

    entries: list[_Due]
    running: int = 0
    holds_slot: bool = False
    wake: asyncio.Future[None] | None = None
    until: float = math.inf


class MapWorker:
    """Keeps the checks of one map running on schedule until cancelled."""

    def __init__(
        self,
        checks: Sequence[ScheduledCheck],
        *,
        statuses: dict[CheckKey, CheckStatus],
        run_check: RunCheck,
        clock: Clock,
        on_result: OnResult | None = None,
        on_lag: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
        max_hosts_in_flight: int | None = None,
    ) -> None:
        """``max_hosts_in_flight``: the bound on the hosts with checks in flight (None:
        :data:`MAX_HOSTS_IN_FLIGHT`)."""
        if max_hosts_in_flight is None:
            max_hosts_in_flight = MAX_HOSTS_IN_FLIGHT
        if max_hosts_in_flight < 1:
            raise ValueError("max_hosts_in_flight must be at least 1")
        self.checks = list(checks)
        self._statuses = statuses
        self._run_check = run_check
        self._clock = clock
        self._on_result = on_result
        self._on_lag = on_lag
        self._rng = rng or random.Random()
        self._slots = asyncio.Semaphore(max_hosts_in_flight)
        self._by_host: dict[str, list[ScheduledCheck]] = {}
        for check in self.checks:
            self._by_host.setdefault(check.key.host, []).append(check)

    @property
    def first_run_spread_s(self) -> float:
        """The span new checks first run in: max(5 s, new hosts / 50 per second), each
        check's interval at most (see :data:`FIRST_RUNS_PER_S`)."""
        new = sum(1 for checks in self._by_host.values() if any(map(self._is_new, checks)))
        return max(FIRST_RUN_SPREAD_S, new / FIRST_RUNS_PER_S)

    def _is_new(self, check: ScheduledCheck) -> bool:
        status = self._statuses.get(check.key)
        return status is None or status.last_run is None

    async def run(self) -> None:
        spread = self.first_run_spread_s
        hosts = [self._host(checks, spread) for checks in self._by_host.values()]
        async with asyncio.TaskGroup() as group:
            for host in hosts:
                key = host.entries[0].check.key
                group.create_task(self._keep_host(host, group), name=f"host {key.map}/{key.host}")

    def _host(self, checks: list[ScheduledCheck], spread: float) -> _Host:
        now, draw = self._clock.now(), self._rng.random()
        entries = []
        for check in checks:
            status = self._statuses.setdefault(check.key, CheckStatus())
            due = now + self.first_delay(check, status, draw=draw, spread=spread)
            entries.append(_Due(check, status, due))
        return _Host(entries)

    def first_delay(
        self,
        check: ScheduledCheck,
        status: CheckStatus,
        *,
        draw: float | None = None,
        spread: float | None = None,
    ) -> float:
        """Resume a known check where its schedule was; spread new ones out over
        ``spread`` (default :attr:`first_run_spread_s`) or their interval. ``draw`` (in
        [0, 1), random by default) is shared by the checks of one host: one frame."""
        if status.last_run is not None:
            due = status.last_run + status.next_delay(check.policy)
            return max(0.0, due - self._clock.now())
        span = min(check.policy.interval_s, self.first_run_spread_s if spread is None else spread)
        return (self._rng.random() if draw is None else draw) * span

    async def _keep_host(self, host: _Host, group: asyncio.TaskGroup) -> None:
        """Start the host's due checks together, round after round."""
        while True:
            idle = [entry for entry in host.entries if not entry.running]
            earliest = min((entry.due for entry in idle), default=math.inf)
            if earliest > self._clock.now():
                await self._wait(host, until=earliest)
                continue
            if not host.holds_slot:  # nothing of this host runs: nothing changes meanwhile
                await self._slots.acquire()
                host.holds_slot = True
            now = self._clock.now()
            factor = self._rng.uniform(1 - JITTER, 1 + JITTER)
            for entry in idle:
                if entry.due > now + coalescing_window(entry.delay):
                    continue
                if self._on_lag is not None:  # due to start: what the loop and the slots cost
                    self._on_lag(max(0.0, now - entry.due))
                entry.running = True
                host.running += 1
                name = f"check {'/'.join(entry.check.key)}"
                group.create_task(self._run(host, entry, started=now, factor=factor), name=name)

    async def _wait(self, host: _Host, *, until: float) -> None:
        """Sleep until ``until``, or until a check of the host finishes due sooner. With
        none running nothing can come sooner: a plain sleep."""
        if host.running == 0:
            await self._clock.sleep(until - self._clock.now())
            return
        loop = asyncio.get_running_loop()
        host.wake, host.until = loop.create_future(), until
        try:
            if until == math.inf:
                await host.wake
                return
            sleeper = loop.create_task(self._clock.sleep(until - self._clock.now()))
            try:  # the sleep lives only inside this wait: cancelled on every way out
                await asyncio.wait((sleeper, host.wake), return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
        finally:
            host.wake, host.until = None, math.inf

    async def _run(self, host: _Host, entry: _Due, *, started: float, factor: float) -> None:
        check, status = entry.check, entry.status
        try:
            run = await self._run_check(check)
            finished = self._clock.now()
            changed = status.record(
                run.outcome, at=finished, duration_s=run.duration_s, policy=check.policy
            )
            if changed:
                log.info(
                    "%s: hard state %s: %s",
                    "/".join(check.key),
                    status.hard_state.name if status.hard_state else "PENDING",
                    status.message,
                    extra=context(**check.key._asdict()),
                )
            if self._on_result is not None:
                self._on_result(check, run, status, changed)
            entry.due = self._next_due(host, entry, started, finished, factor)
        finally:
            entry.running = False
            host.running -= 1
            if host.running == 0 and host.holds_slot:
                host.holds_slot = False
                self._slots.release()
        if host.wake is not None and not host.wake.done() and entry.due < host.until:
            host.wake.set_result(None)

    def _next_due(
        self, host: _Host, entry: _Due, started: float, finished: float, factor: float
    ) -> float:
        """The round's start plus the jittered delay (from the end, as before, for a check
        slower than that), or a same-delay sibling's due time within the jitter band."""
        delay = entry.delay
        base = started if started + delay * factor >= finished else finished
        due = base + delay * factor
        low, high = base + delay * (1 - JITTER), base + delay * (1 + JITTER)
        siblings = [
            other.due
            for other in host.entries
            if other is not entry
            and not other.running
            and low <= other.due <= high
            and other.delay == delay
        ]
        return min(siblings, key=lambda other: abs(other - due), default=due)


def fingerprint(checks: Sequence[ScheduledCheck]) -> tuple[object, ...]:
    """What decides whether a map's worker must be restarted for a new revision."""
    return tuple(sorted(checks, key=lambda check: check.key))


def group_by_map(checks: Sequence[ScheduledCheck]) -> Mapping[str, list[ScheduledCheck]]:
    grouped: dict[str, list[ScheduledCheck]] = {}
    for check in checks:
        grouped.setdefault(check.key.map, []).append(check)
    return grouped
