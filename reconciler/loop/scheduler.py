"""Running every check of a map at its interval, one worker per map.

A :class:`MapWorker` owns one task per (component, check, host) inside a TaskGroup; each
task sleeps until its check is due (on the injected :class:`~reconciler.clock.Clock`),
runs it, records the result in its :class:`~reconciler.loop.checkstate.CheckStatus` and
computes the next due time (the retry interval while a problem is soft, with jitter). A
slow host only holds its own tasks; a semaphore bounds what one map runs at once.
"""

from __future__ import annotations

import asyncio
import logging
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
"""Each interval is stretched or shrunk by up to this fraction, so checks spread out."""
FIRST_RUN_SPREAD_S = 5.0
"""A new check first runs at a random instant within this many seconds (or its interval)."""


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
        max_concurrent: int = 64,
    ) -> None:
        self.checks = list(checks)
        self._statuses = statuses
        self._run_check = run_check
        self._clock = clock
        self._on_result = on_result
        self._on_lag = on_lag
        self._rng = rng or random.Random()
        self._slots = asyncio.Semaphore(max_concurrent)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for check in self.checks:
                group.create_task(self._keep_running(check), name=f"check {'/'.join(check.key)}")

    async def _keep_running(self, check: ScheduledCheck) -> None:
        status = self._statuses.setdefault(check.key, CheckStatus())
        delay = self.first_delay(check, status)
        while True:
            due = self._clock.now() + delay
            await self._clock.sleep(delay)
            async with self._slots:
                if self._on_lag is not None:  # due to start: what the loop and the slots cost
                    self._on_lag(max(0.0, self._clock.now() - due))
                run = await self._run_check(check)
            changed = status.record(
                run.outcome, at=self._clock.now(), duration_s=run.duration_s, policy=check.policy
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
            delay = self._jittered(status.next_delay(check.policy))

    def first_delay(self, check: ScheduledCheck, status: CheckStatus) -> float:
        """Resume a known check where its schedule was; spread new ones out."""
        if status.last_run is not None:
            due = status.last_run + status.next_delay(check.policy)
            return max(0.0, due - self._clock.now())
        return self._rng.uniform(0, min(check.policy.interval_s, FIRST_RUN_SPREAD_S))

    def _jittered(self, delay: float) -> float:
        return delay * self._rng.uniform(1 - JITTER, 1 + JITTER)


def fingerprint(checks: Sequence[ScheduledCheck]) -> tuple[object, ...]:
    """What decides whether a map's worker must be restarted for a new revision."""
    return tuple(sorted(checks, key=lambda check: check.key))


def group_by_map(checks: Sequence[ScheduledCheck]) -> Mapping[str, list[ScheduledCheck]]:
    grouped: dict[str, list[ScheduledCheck]] = {}
    for check in checks:
        grouped.setdefault(check.key.map, []).append(check)
    return grouped
