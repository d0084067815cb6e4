"""ActionRunner with a fake Transport and a VirtualClock: commands, polling, locks, order."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shlex
from collections.abc import Awaitable

import pytest
from actions_support import Phases, action, host, load_map

from agentless.errors import HostUnreachable
from agentless.inventory import Host
from agentless.output import OutputSink
from agentless.result import CommandResult
from agentless.testing import FakeTransport, reply, succeed
from reconciler.actions import (
    ActionOutcome,
    ActionRunner,
    StepStatus,
    action_command,
    dependency_order,
    excerpt,
    whole_map_plan,
)
from reconciler.clock import VirtualClock, settle
from reconciler.model.maps import Action, Map
from reconciler.model.status import ComponentStatus

STARTING, STOPPING = ComponentStatus.STARTING, ComponentStatus.STOPPING
H1, H2 = host("h1"), host("h2")

ASYNC_START = action(
    name="start",
    command="svc start",
    timeout_secs=30,
    completion_check={
        "type": "command",
        "config": {"command": "svc ready"},
        "timeout_secs": 10,
        "interval_secs": 2,
    },
    **{"async": True},
)


# -- action_command ---------------------------------------------------------------------


def test_command_without_user_is_the_maps_text_unchanged() -> None:
    text = "pg_ctl start -D /var/lib/pg | tee -a /tmp/log; echo \"$HOME\" 'x'"
    assert action_command(action(name="start", command=text)) == text


def test_run_as_user_is_sudo_n_u_with_the_user_and_command_quoted() -> None:
    text = "pg_ctl start -D '/var/lib/pg' && echo $HOME"
    cmd = action_command(action(name="start", command=text, run_as_user="postgres"))
    assert cmd == f"sudo -n -u postgres -- /bin/sh -c {shlex.quote(text)}"
    assert shlex.split(cmd) == ["sudo", "-n", "-u", "postgres", "--", "/bin/sh", "-c", text]


def test_run_as_user_is_refused_when_it_is_not_a_plain_user_name() -> None:
    with pytest.raises(ValueError, match="run_as_user"):
        action(name="start", command="true", run_as_user="root; touch /tmp/x")


# -- one action -------------------------------------------------------------------------


def run_now(runner: ActionRunner, act: Action, hosts: list[Host]) -> ActionOutcome:
    async def go() -> ActionOutcome:
        return await runner.run_action("shop", "api", act, hosts)

    return asyncio.run(go())


def test_success_on_every_host_with_digest_and_excerpt() -> None:
    async def respond(h: Host, command: str, limit: float) -> CommandResult:
        return reply(h, command, stdout=f"hello from {h.name}\n", stderr="warn\n")

    fake = FakeTransport(respond)
    outcome = run_now(
        ActionRunner(fake, clock=VirtualClock()), action(name="flush", command="x"), [H1, H2]
    )
    assert outcome.succeeded, outcome
    assert [h.host for h in outcome.hosts] == ["h1", "h2"]
    first = outcome.hosts[0]
    assert first.exit_status == 0
    assert first.stdout_sha256 == hashlib.sha256(b"hello from h1\n").hexdigest()
    assert first.stderr_sha256 == hashlib.sha256(b"warn\n").hexdigest()
    assert (first.stdout_bytes, first.stderr_bytes, first.output_truncated) == (14, 5, False)
    assert first.output_excerpt == "hello from h1\n\n--- stderr ---\nwarn\n"
    assert sorted(fake.calls) == [("h1", "x", 300.0), ("h2", "x", 300.0)]
    json.dumps(outcome.to_json())


def test_an_action_over_the_output_cap_ends_by_its_status_and_says_what_it_dropped() -> None:
    """The audit record gives each stream's size and the sha256 of every byte the host
    sent; the excerpt says where reading stopped."""
    flood = b"\xff" + b"y" * 99_999

    async def respond(h: Host, command: str, limit: float) -> CommandResult:
        out, err = OutputSink(4096), OutputSink(4096)
        for at in range(0, len(flood), 30_000):
            out.feed(flood[at : at + 30_000])
        err.feed(b"warn\n")
        return CommandResult.of(h.name, command, 0, out, err, 0.5)

    outcome = run_now(
        ActionRunner(FakeTransport(respond), clock=VirtualClock()),
        action(name="dump", command="x"),
        [H1],
    )
    assert outcome.succeeded, outcome
    record = outcome.to_json()["hosts"][0]  # type: ignore[index]
    assert record["stdout_bytes"] == 100_000
    assert record["stderr_bytes"] == 5
    assert record["output_truncated"] is True
    assert record["stdout_sha256"] == hashlib.sha256(flood).hexdigest()
    assert record["stderr_sha256"] == hashlib.sha256(b"warn\n").hexdigest()
    note = "output over 4096 bytes (stdout 100000 bytes; the rest was dropped)"
    assert record["output_excerpt"].endswith(f"\n--- {note} ---\n")
    assert len(record["output_excerpt"].encode()) < 4096 + 200


def test_the_actions_timeout_is_passed_and_a_timed_out_host_fails() -> None:
    async def respond(h: Host, command: str, limit: float) -> CommandResult:
        return reply(h, command, timed_out=h.name == "h2", duration_s=limit)

    fake = FakeTransport(respond)
    act = action(name="backup", command="dump", timeout_secs=7)
    outcome = run_now(ActionRunner(fake, clock=VirtualClock()), act, [H1, H2])
    assert {t for _, _, t in fake.calls} == {7.0}
    assert not outcome.succeeded
    assert [h.succeeded for h in outcome.hosts] == [True, False]
    assert outcome.hosts[1].timed_out
    assert outcome.hosts[1].reason == "timed out after 7.0s"
    assert outcome.reason == "h2: timed out after 7.0s"


def test_a_non_zero_exit_fails_and_is_recorded() -> None:
    async def respond(h: Host, command: str, limit: float) -> CommandResult:
        return reply(h, command, exit_status=3)

    outcome = run_now(
        ActionRunner(FakeTransport(respond), clock=VirtualClock()),
        action(name="x", command="x"),
        [H1],
    )
    assert not outcome.succeeded
    assert outcome.to_json()["exit_codes"] == {"h1": 3}


def test_an_unreachable_host_fails_with_its_reason_and_the_others_still_run() -> None:
    async def respond(h: Host, command: str, limit: float) -> CommandResult:
        if h.name == "h1":
            raise HostUnreachable("h1", "connection refused")
        return reply(h, command)

    fake = FakeTransport(respond)
    outcome = run_now(ActionRunner(fake, clock=VirtualClock()), ASYNC_START, [H1, H2])
    h1, h2 = outcome.hosts
    assert (h1.unreachable, h1.stdout_sha256, h1.completion) == ("connection refused", None, None)
    assert h1.reason == "not started: host unreachable: connection refused"
    assert h2.succeeded
    assert not outcome.succeeded
    assert fake.commands("h1") == ["svc start"]  # no completion check on a dead host


def test_no_hosts_is_a_failure_not_a_vacuous_success() -> None:
    outcome = run_now(
        ActionRunner(FakeTransport(succeed), clock=VirtualClock()),
        action(name="x", command="x"),
        [],
    )
    assert not outcome.succeeded
    assert outcome.error == "no hosts to run on"


def test_a_host_listed_twice_runs_once() -> None:
    fake = FakeTransport(succeed)
    run_now(ActionRunner(fake, clock=VirtualClock()), action(name="x", command="x"), [H1, H1])
    assert fake.commands() == ["x"]


# -- output -----------------------------------------------------------------------------


def test_long_output_keeps_head_and_tail_around_a_marker_and_never_the_whole() -> None:
    middle = "SECRET-MIDDLE-" * 1000
    stdout = "HEAD-" + "a" * 3000 + middle + "b" * 3000 + "-TAIL"

    async def respond(h: Host, command: str, limit: float) -> CommandResult:
        return reply(h, command, stdout=stdout)

    runner = ActionRunner(FakeTransport(respond), clock=VirtualClock(), output_limit=1024)
    outcome = run_now(runner, action(name="x", command="x"), [H1])
    kept = outcome.hosts[0].output_excerpt
    assert kept.startswith("HEAD-")
    assert kept.endswith("-TAIL")
    omitted = len(stdout.encode()) - 1024
    assert f"…[{omitted} bytes omitted]…" in kept
    assert len(kept.encode()) < 1100
    details = json.dumps(outcome.to_json())
    assert "SECRET-MIDDLE" not in details
    assert hashlib.sha256(stdout.encode()).hexdigest() in details


def test_excerpt_never_cuts_a_character_in_two() -> None:
    text = "é" * 100  # 200 bytes
    cut = excerpt(text, "", limit=51)
    assert "\ufffd" not in cut
    assert cut.startswith("é" * 12)
    assert cut.endswith("é" * 12)


# -- completion checks in virtual time --------------------------------------------------


def ready_after(clock: VirtualClock, attempts: int) -> tuple[FakeTransport, list[float]]:
    """A host whose completion probe fails ``attempts - 1`` times, then passes.

    ``probes`` holds the (virtual) time of every probe.
    """
    probes: list[float] = []

    async def respond(h: Host, command: str, limit: float) -> CommandResult:
        if command == "svc ready":
            probes.append(clock.now())
            status = 0 if len(probes) >= attempts else 2
            return reply(h, command, exit_status=status, stdout=f"CRITICAL - try {len(probes)}")
        return reply(h, command)

    return FakeTransport(respond), probes


def test_completion_check_polled_every_interval_until_ok_while_phase_is_starting() -> None:
    clock = VirtualClock()
    fake, probes = ready_after(clock, 3)
    phases = Phases()
    runner = ActionRunner(fake, clock=clock, set_phase=phases)
    outcomes: list[ActionOutcome] = []

    async def go() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(collect(runner.run_action("shop", "api", ASYNC_START, [H1]), outcomes))
            await settle()
            assert probes == [0.0]
            assert phases.current[("shop", "api")] is STARTING
            await clock.advance(1.9)
            assert probes == [0.0]
            await clock.advance(0.1)
            assert probes == [0.0, 2.0]
            assert not outcomes
            await clock.advance(2)
        assert probes == [0.0, 2.0, 4.0]

    asyncio.run(go())
    [outcome] = outcomes
    assert outcome.succeeded
    completion = outcome.hosts[0].completion
    assert completion is not None
    assert (completion.passed, completion.attempts, completion.waited_s) == (True, 3, 4.0)
    assert phases.calls == [("shop", "api", STARTING), ("shop", "api", None)]


def test_completion_check_that_never_passes_fails_at_its_timeout() -> None:
    clock = VirtualClock()
    fake, probes = ready_after(clock, 1000)
    runner = ActionRunner(fake, clock=clock)
    outcomes: list[ActionOutcome] = []

    async def go() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(collect(runner.run_action("shop", "api", ASYNC_START, [H1]), outcomes))
            await clock.advance(9.9)
            assert not outcomes
            await clock.advance(0.1)

    asyncio.run(go())
    assert probes == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    [outcome] = outcomes
    assert not outcome.succeeded
    host_outcome = outcome.hosts[0]
    assert host_outcome.exit_status == 0
    assert host_outcome.completion is not None
    assert host_outcome.completion.state == "CRITICAL"
    assert host_outcome.reason == "completion check failed: not OK after 10s: CRITICAL - try 6"


def test_no_completion_check_when_the_action_is_not_async_or_its_command_failed() -> None:
    sync = action(name="start", command="svc start", completion_check=ASYNC_START.completion_check)

    async def failing(h: Host, command: str, limit: float) -> CommandResult:
        return reply(h, command, exit_status=1)

    fake = FakeTransport(succeed)
    assert run_now(ActionRunner(fake, clock=VirtualClock()), sync, [H1]).succeeded
    failed = FakeTransport(failing)
    assert not run_now(ActionRunner(failed, clock=VirtualClock()), ASYNC_START, [H1]).succeeded
    assert fake.commands() == failed.commands() == ["svc start"]


async def collect(run: Awaitable[ActionOutcome], into: list[ActionOutcome]) -> None:
    into.append(await run)


# -- phases -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [("start", [STARTING, None]), ("restart", [STARTING, None]), ("stop", [STOPPING, None])],
)
def test_phase_of_start_restart_and_stop(name: str, expected: list[object]) -> None:
    phases = Phases()
    run_now(
        ActionRunner(FakeTransport(succeed), clock=VirtualClock(), set_phase=phases),
        action(name=name, command="x"),
        [H1],
    )
    assert [p for _, _, p in phases.calls] == expected


def test_a_custom_action_does_not_change_the_phase() -> None:
    phases = Phases()
    run_now(
        ActionRunner(FakeTransport(succeed), clock=VirtualClock(), set_phase=phases),
        action(name="clear_cache", command="x"),
        [H1],
    )
    assert phases.calls == []


def test_the_phase_is_cleared_even_when_the_run_blows_up() -> None:
    async def broken(h: Host, command: str, limit: float) -> CommandResult:
        raise RuntimeError("bug in a transport")

    phases = Phases()
    runner = ActionRunner(FakeTransport(broken), clock=VirtualClock(), set_phase=phases)
    with pytest.raises(ExceptionGroup):
        run_now(runner, action(name="stop", command="x"), [H1])
    assert phases.calls == [("shop", "api", STOPPING), ("shop", "api", None)]


# -- per-host locks ---------------------------------------------------------------------


class Gate:
    """Commands wait here until the test opens the gate for them."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()

    async def respond(self, h: Host, command: str, limit: float) -> CommandResult:
        await self.opened.wait()
        return reply(h, command)


def test_two_actions_on_one_host_never_overlap_but_other_hosts_run_at_once() -> None:
    async def go() -> FakeTransport:
        gate = Gate()
        fake = FakeTransport(gate.respond)
        runner = ActionRunner(fake, clock=VirtualClock())
        async with asyncio.TaskGroup() as tg:
            tg.create_task(runner.run_action("shop", "api", action(name="a", command="A"), [H1]))
            tg.create_task(runner.run_action("shop", "db", action(name="b", command="B"), [H1]))
            tg.create_task(runner.run_action("shop", "db", action(name="c", command="C"), [H2]))
            await settle()
            assert fake.running == {"h1": 1, "h2": 1}
            assert fake.commands() == ["A", "C"]
            gate.opened.set()
        return fake

    fake = asyncio.run(go())
    assert fake.max_running == {"h1": 1, "h2": 1}
    assert fake.commands("h1") == ["A", "B"]


def test_the_host_lock_is_held_through_the_completion_check() -> None:
    clock = VirtualClock()
    fake, _probes = ready_after(clock, 2)
    runner = ActionRunner(fake, clock=clock)

    async def go() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(runner.run_action("shop", "api", ASYNC_START, [H1]))
            await settle()
            tg.create_task(runner.run_action("shop", "api", action(name="b", command="B"), [H1]))
            await settle()
            assert fake.commands() == ["svc start", "svc ready"]
            await clock.advance(2)

    asyncio.run(go())
    assert fake.commands() == ["svc start", "svc ready", "svc ready", "B"]


# -- whole map --------------------------------------------------------------------------

SHOP = """
    name: shop
    components:
      - id: web
        dependencies: [api]
        actions:
          - {name: start, command: start-web}
          - {name: stop, command: stop-web}
      - id: api
        dependencies: [db, cache, zookeeper]
        actions:
          - {name: start, command: start-api}
          - {name: stop, command: stop-api}
      - id: docs
        actions:
          - {name: start, command: start-docs}
      - id: cache
        actions:
          - {name: start, command: start-cache}
          - {name: stop, command: stop-cache}
      - id: db
        actions:
          - {name: start, command: start-db}
          - {name: stop, command: stop-db}
"""


def test_dependency_order_puts_dependencies_first_and_keeps_map_order_for_ties() -> None:
    assert dependency_order(load_map(SHOP)) == ["docs", "cache", "db", "api", "web"]


def test_restart_is_stop_in_reverse_then_start_in_order() -> None:
    plan = whole_map_plan(load_map(SHOP), "restart")
    assert plan[:5] == [(c, "stop") for c in ["web", "api", "db", "cache", "docs"]]
    assert plan[5:] == [(c, "start") for c in ["docs", "cache", "db", "api", "web"]]
    with pytest.raises(ValueError, match="not 'backup'"):
        whole_map_plan(load_map(SHOP), "backup")


def test_a_cycle_is_refused() -> None:
    cyclic = load_map(
        """
        name: loop
        components:
          - {id: a, dependencies: [b]}
          - {id: b, dependencies: [a]}
          - {id: c}
        """
    )
    with pytest.raises(ValueError, match="dependency cycle among a, b"):
        dependency_order(cyclic)


def by_component(m: Map) -> dict[str, list[Host]]:
    return {c.id: [H1] for c in m.components}


def test_whole_map_stop_runs_dependents_first_and_skips_components_without_it() -> None:
    shop = load_map(SHOP)
    fake = FakeTransport(succeed)
    phases = Phases()
    runner = ActionRunner(fake, clock=VirtualClock(), set_phase=phases)
    outcome = asyncio.run(runner.run_whole_map(shop, "stop", by_component(shop)))
    assert outcome.succeeded, outcome.reason
    assert fake.commands() == ["stop-web", "stop-api", "stop-db", "stop-cache"]
    assert [(s.component, s.status) for s in outcome.steps][-1] == ("docs", StepStatus.SKIPPED)
    assert phases.calls[:2] == [("shop", "web", STOPPING), ("shop", "web", None)]
    record = outcome.to_json()
    assert record["component"] == "*"
    json.dumps(record)


def test_whole_map_start_stops_at_the_first_failure() -> None:
    shop = load_map(SHOP)

    async def respond(h: Host, command: str, limit: float) -> CommandResult:
        return reply(h, command, exit_status=1 if command == "start-api" else 0)

    fake = FakeTransport(respond)
    runner = ActionRunner(fake, clock=VirtualClock())
    outcome = asyncio.run(runner.run_whole_map(shop, "start", by_component(shop)))
    assert not outcome.succeeded
    assert fake.commands() == ["start-docs", "start-cache", "start-db", "start-api"]
    assert [(s.component, s.status.value) for s in outcome.steps] == [
        ("docs", "succeeded"),
        ("cache", "succeeded"),
        ("db", "succeeded"),
        ("api", "failed"),
        ("web", "not_run"),
    ]
    assert outcome.reason == "api/start: h1: exit status 1"


def test_whole_map_waits_for_each_completion_check_before_the_next_component() -> None:
    two = load_map(
        """
        name: two
        components:
          - id: app
            dependencies: [db]
            actions: [{name: start, command: start-app}]
          - id: db
            actions:
              - name: start
                command: svc start
                async: true
                completion_check:
                  type: command
                  config: {command: svc ready}
                  interval_secs: 5
                  timeout_secs: 60
        """
    )
    clock = VirtualClock()
    fake, _probes = ready_after(clock, 3)
    runner = ActionRunner(fake, clock=clock)
    outcomes: list[ActionOutcome] = []

    async def go() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(collect(runner.run_whole_map(two, "start", by_component(two)), outcomes))
            await clock.advance(5)
            assert "start-app" not in fake.commands()
            await clock.advance(5)

    asyncio.run(go())
    assert fake.commands() == ["svc start", "svc ready", "svc ready", "svc ready", "start-app"]
    assert outcomes[0].succeeded


def test_whole_map_component_without_hosts_is_skipped() -> None:
    shop = load_map(SHOP)
    fake = FakeTransport(succeed)
    runner = ActionRunner(fake, clock=VirtualClock())
    outcome = asyncio.run(runner.run_whole_map(shop, "start", {"db": [H1]}))
    assert outcome.succeeded
    assert fake.commands() == ["start-db"]
    skipped = {s.component: s.reason for s in outcome.steps if s.status is StepStatus.SKIPPED}
    assert skipped["api"] == "no hosts to run on"
    nothing = asyncio.run(runner.run_whole_map(shop, "start", {}))
    assert not nothing.succeeded
