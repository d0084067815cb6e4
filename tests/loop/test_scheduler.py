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


def named(host: str, check: str, *, interval: float = 30, retry: float = 10) -> ScheduledCheck:
    key = CheckKey("m", "c", check, host)
    target = CheckTarget(
        "/".join(key), Host(HostName(host), host), "command", CommandConfig(command="true"), 5
    )
    return ScheduledCheck(key, target, CheckPolicy(interval, retry, 3))


class Recorder:
    """A run_check that notes when each check starts (virtual time) and how many of each
    check and of each host run at once; a check takes ``durations[check]`` seconds."""

    def __init__(self, clock: VirtualClock, durations: dict[str, float] | None = None) -> None:
        self.clock = clock
        self.durations = durations or {}
        self.starts: dict[str, list[tuple[float, str]]] = {}
        self.running: Counter[tuple[str, str]] = Counter()
        self.most_at_once: Counter[tuple[str, str]] = Counter()
        self.hosts_running: Counter[str] = Counter()
        self.most_hosts = 0

    async def __call__(self, check: ScheduledCheck) -> CheckRun:
        host, name = check.key.host, check.key.check
        self.starts.setdefault(host, []).append((self.clock.now(), name))
        self.running[host, name] += 1
        self.most_at_once[host, name] = max(self.most_at_once[host, name], self.running[host, name])
        self.hosts_running[host] += 1
        self.most_hosts = max(self.most_hosts, sum(1 for n in self.hosts_running.values() if n))
        try:
            await self.clock.sleep(self.durations.get(name, 0.05))
        finally:
            self.running[host, name] -= 1
            self.hosts_running[host] -= 1
        return CheckRun(check.target, CheckOutcome(CheckState.OK, "ok"), 0.05, 0.0)

    def rounds(self, host: str) -> list[set[str]]:
        """The checks of ``host`` started at each distinct instant, in order."""
        by_time: dict[float, set[str]] = {}
        for at, name in self.starts.get(host, []):
            by_time.setdefault(at, set()).add(name)
        return [by_time[at] for at in sorted(by_time)]


FIVE = ("tcp", "process", "memory", "disk", "command")


def test_the_same_interval_checks_of_a_host_start_in_one_tick_every_round() -> None:
    clock = VirtualClock()
    durations = {name: 0.1 * i for i, name in enumerate(FIVE, 1)}  # they finish apart
    recorder = Recorder(clock, durations)
    hosts = ("a", "b", "c")
    worker = MapWorker(
        [named(h, c) for h in hosts for c in FIVE],
        statuses={},
        run_check=recorder,
        clock=clock,
        rng=random.Random(4),
    )
    asyncio.run(drive(worker, clock, 300))
    for host in hosts:
        rounds = recorder.rounds(host)
        assert len(rounds) >= 9, rounds
        assert all(names == set(FIVE) for names in rounds), rounds
    first = {recorder.starts[h][0][0] for h in hosts}
    assert len(first) == len(hosts)  # hosts themselves are spread out


def resumed(check: ScheduledCheck, due: float) -> CheckStatus:
    """A status whose check is next due at ``due`` (it last ran one interval before)."""
    return CheckStatus(last_run=due - check.policy.interval_s)


def test_checks_with_other_intervals_coalesce_only_within_the_window() -> None:
    clock, lags = VirtualClock(), list[float]()
    recorder = Recorder(clock)
    a, b, c = named("h", "a", interval=30), named("h", "b", interval=60), named("h", "c")
    d = named("h", "d", interval=10)
    # a is due at 10; b (window 1 s) at 10.9 joins it; c (window 1 s) at 12 and
    # d (window 0.5 s: 5% of 10 s) at 10.7 do not
    due = [(a, 10.0), (b, 10.9), (c, 12.0), (d, 10.7)]
    statuses = {check.key: resumed(check, at) for check, at in due}
    worker = MapWorker(
        [a, b, c, d], statuses=statuses, run_check=recorder, clock=clock, on_lag=lags.append
    )
    asyncio.run(drive(worker, clock, 13))
    assert recorder.starts["h"] == [(10.0, "a"), (10.0, "b"), (10.7, "d"), (12.0, "c")]
    assert lags == [0.0, 0.0, 0.0, 0.0]  # b started early, the rest on time


def test_a_slow_check_holds_back_neither_its_siblings_nor_itself_twice() -> None:
    clock = VirtualClock()
    recorder = Recorder(clock, {"slow": 25.0})
    checks = [named("h", "slow", interval=10), named("h", "fast", interval=10)]
    checks.append(named("h", "hourly", interval=3600))
    worker = MapWorker(checks, statuses={}, run_check=recorder, clock=clock, rng=random.Random(5))
    asyncio.run(drive(worker, clock, 120))
    runs = Counter(name for _, name in recorder.starts["h"])
    assert runs["fast"] >= 10
    assert recorder.most_at_once["h", "slow"] == 1
    # 25 s runs then a 9-11 s rest: 3 to 4 runs; the host task, asleep until the hourly
    # check is due, was woken each time the slow one finished
    assert 3 <= runs["slow"] <= 4, runs
    assert runs["hourly"] == 1


def test_a_check_out_of_step_rejoins_a_sibling_due_within_its_jitter_band() -> None:
    class Highest(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    clock = VirtualClock()
    recorder = Recorder(clock)
    a, b = named("h", "a"), named("h", "b")
    # b runs at 1; drawn alone, it would next be due at 1 + 33 = 34, 4 s after a (at 30)
    statuses = {a.key: resumed(a, 30.0), b.key: resumed(b, 1.0)}
    worker = MapWorker([a, b], statuses=statuses, run_check=recorder, clock=clock, rng=Highest())
    asyncio.run(drive(worker, clock, 100))
    assert recorder.rounds("h") == [{"b"}, {"a", "b"}, {"a", "b"}, {"a", "b"}]


def test_the_first_runs_of_many_new_hosts_are_spread_over_hosts_per_50_s() -> None:
    clock = VirtualClock()
    recorder = Recorder(clock)
    hosts = [f"h{i}" for i in range(1000)]
    checks = [named(h, c, interval=30) for h in hosts for c in ("x", "y")]
    worker = MapWorker(checks, statuses={}, run_check=recorder, clock=clock, rng=random.Random(6))
    assert worker.first_run_spread_s == 20.0  # 1,000 hosts at 50 a second
    asyncio.run(drive(worker, clock, 21))
    first = [recorder.rounds(h)[0] for h in hosts]
    assert all(names == {"x", "y"} for names in first)  # a host's first run is one frame
    per_second = Counter(int(recorder.starts[h][0][0]) for h in hosts)
    assert sorted(per_second) == list(range(20))
    assert max(per_second.values()) <= 100  # 5 s would have been 200 a second


def test_the_new_checks_of_a_small_map_are_spread_over_5_s() -> None:
    check = scheduled("a", interval=60)
    worker = MapWorker(
        [check], statuses={}, run_check=fake_runs(lambda _: CheckState.OK, Counter()),
        clock=VirtualClock(),
    )  # fmt: skip
    assert worker.first_run_spread_s == 5.0


def test_the_bound_counts_hosts_in_flight_and_their_wait_as_lag() -> None:
    clock, lags = VirtualClock(), list[float]()
    recorder = Recorder(clock, {name: 4.0 for name in FIVE})
    hosts = ("a", "b", "c", "d")
    checks = [named(h, c) for h in hosts for c in FIVE]
    statuses = {check.key: resumed(check, 1.0) for check in checks}  # all due at 1
    worker = MapWorker(
        checks,
        statuses=statuses,
        run_check=recorder,
        clock=clock,
        on_lag=lags.append,
        max_hosts_in_flight=2,
    )
    asyncio.run(drive(worker, clock, 12))
    assert recorder.most_hosts == 2
    for host in hosts:
        assert recorder.rounds(host)[0] == set(FIVE)  # a round waits whole, starts whole
    assert sorted(lags) == [0.0] * 10 + [4.0] * 10  # two hosts waited a run of 4 s
