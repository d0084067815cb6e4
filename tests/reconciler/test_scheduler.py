"""The scheduler in virtual time: intervals, faster retries, isolation of slow hosts."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable

from agentless.checks.config import CommandConfig
from agentless.inventory import Host
from agentless.result import CheckOutcome, CheckState, HostName
from agentless.runner import CheckRun, CheckTarget
from reconciler.clock import VirtualClock
from reconciler.loop.checkstate import CheckPolicy, CheckStatus
from reconciler.loop.scheduler import CheckKey, MapWorker, ScheduledCheck


def scheduled(
    host: str, *, interval: float = 60, retry: float = 10, attempts: int = 3
) -> ScheduledCheck:
    key = CheckKey("m", "c", "probe", host)
    target = CheckTarget(
        "/".join(key), Host(HostName(host), host), "command", CommandConfig(command="true"), 5
    )
    return ScheduledCheck(key, target, CheckPolicy(interval, retry, attempts))


def fake_runs(
    state_of: Callable[[str], CheckState], calls: Counter[str], block: asyncio.Event | None = None
) -> Callable[[ScheduledCheck], Awaitable[CheckRun]]:
    async def run(check: ScheduledCheck) -> CheckRun:
        calls[check.key.host] += 1
        if block is not None and check.key.host == "slow":
            await block.wait()
        state = state_of(check.key.host)
        return CheckRun(check.target, CheckOutcome(state, state.name), 0.01, 0.0)

    return run


async def drive(worker: MapWorker, clock: VirtualClock, seconds: float) -> None:
    async with asyncio.TaskGroup() as group:
        task = group.create_task(worker.run())
        for _ in range(int(seconds)):
            await clock.advance(1)
        task.cancel()


def test_checks_run_at_their_interval_with_jitter() -> None:
    clock, calls = VirtualClock(), Counter[str]()
    statuses: dict[CheckKey, CheckStatus] = {}
    worker = MapWorker(
        [scheduled("a", interval=30)],
        statuses=statuses,
        run_check=fake_runs(lambda _: CheckState.OK, calls),
        clock=clock,
        rng=random.Random(1),
    )
    asyncio.run(drive(worker, clock, 600))
    # first run within 5 s, then every 27-33 s: 19 to 22 runs in 600 s
    assert 18 <= calls["a"] <= 22
    assert statuses[CheckKey("m", "c", "probe", "a")].hard_state is CheckState.OK


def test_a_soft_problem_is_retried_at_the_retry_interval_until_hard() -> None:
    clock, calls = VirtualClock(), Counter[str]()
    statuses: dict[CheckKey, CheckStatus] = {}
    worker = MapWorker(
        [scheduled("a", interval=300, retry=10, attempts=3)],
        statuses=statuses,
        run_check=fake_runs(lambda _: CheckState.CRITICAL, calls),
        clock=clock,
        rng=random.Random(2),
    )
    asyncio.run(drive(worker, clock, 40))
    status = statuses[CheckKey("m", "c", "probe", "a")]
    assert calls["a"] == 3
    assert status.hard_state is CheckState.CRITICAL


def test_a_slow_host_does_not_delay_another() -> None:
    clock, calls = VirtualClock(), Counter[str]()
    never = asyncio.Event()
    worker = MapWorker(
        [scheduled("slow", interval=10), scheduled("fast", interval=10)],
        statuses={},
        run_check=fake_runs(lambda _: CheckState.OK, calls, block=never),
        clock=clock,
        rng=random.Random(3),
    )
    asyncio.run(drive(worker, clock, 120))
    assert calls["slow"] == 1
    assert calls["fast"] >= 10


def test_a_known_check_resumes_its_schedule_instead_of_running_at_once() -> None:
    clock = VirtualClock(start=1000.0)
    check = scheduled("a", interval=60)
    status = CheckStatus(last_run=990.0)
    worker = MapWorker(
        [check],
        statuses={check.key: status},
        run_check=fake_runs(lambda _: CheckState.OK, Counter()),
        clock=clock,
    )
    assert worker.first_delay(check, status) == 50.0
    fresh = worker.first_delay(check, CheckStatus())
    assert 0.0 <= fresh <= 5.0
