"""The scheduler over a real SshTransport and sshd: a host's due checks go out as one frame."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest
from agentless_support import transport_for
from sshd import Fleet

from agentless.checks.config import CommandConfig
from agentless.inventory import Host
from agentless.result import CheckState
from agentless.runner import CheckRun, CheckTarget, run_check
from agentless.ssh._channel import Job, ShellChannel
from reconciler.clock import RealClock
from reconciler.loop.checkstate import CheckPolicy, CheckStatus
from reconciler.loop.scheduler import CheckKey, MapWorker, ScheduledCheck

pytestmark = pytest.mark.sshd
ROUNDS = 2


def test_the_checks_of_a_host_reach_sshd_as_one_frame_per_round(
    sshd_fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    [server] = sshd_fleet.start(1)
    host = sshd_fleet.host(server)
    frames: list[int] = []  # the commands in each frame written to a shell
    start = ShellChannel.start

    def counted(self: ShellChannel, to: Host, jobs: Sequence[Job]) -> None:
        frames.append(len(jobs))
        start(self, to, jobs)

    monkeypatch.setattr(ShellChannel, "start", counted)
    clock = RealClock()
    checks = []
    for i in range(5):
        key = CheckKey("m", "c", f"probe{i}", host.name)
        config = CommandConfig(command=f"echo {i}")
        target = CheckTarget("/".join(key), host, "command", config, 10)
        # 3 s apart: a round of five echos is back long before the next is due
        checks.append(ScheduledCheck(key, target, CheckPolicy(3.0, 3.0)))
    # known checks, due now: no random first delay to wait for
    statuses = {c.key: CheckStatus(last_run=clock.now() - 3.0) for c in checks}
    runs: list[CheckRun] = []

    async def scenario() -> None:
        transport = transport_for(sshd_fleet)
        done = asyncio.Event()

        async def run(check: ScheduledCheck) -> CheckRun:
            return await run_check(check.target, transport=transport)

        def on_result(_c: ScheduledCheck, run: CheckRun, _s: CheckStatus, _ch: bool) -> None:
            runs.append(run)
            if len(runs) == ROUNDS * len(checks):
                done.set()

        worker = MapWorker(
            checks,
            statuses=statuses,
            run_check=run,
            clock=clock,
            on_result=on_result,
            rng=random.Random(7),
        )
        try:
            async with asyncio.TaskGroup() as group:
                task = group.create_task(worker.run())
                await asyncio.wait_for(done.wait(), 60)
                task.cancel()
        finally:
            await transport.aclose()

    asyncio.run(scenario())
    assert [run.outcome.state for run in runs] == [CheckState.OK] * ROUNDS * len(checks)
    assert frames == [len(checks)] * ROUNDS
