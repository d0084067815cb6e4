"""Unknown versus failed, at the Transport seam: a fake transport raising the engine's errors.

``failed`` only when we know how the command ended (it never started, or an exit status
came back); ``unknown`` when it was sent and no exit status came back.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from actions_support import action, host, load_map

from agentless.errors import AgentlessError, ConnectionLost, HostKeyError, HostUnreachable
from agentless.inventory import Host
from agentless.result import CommandResult
from agentless.testing import FakeTransport, Handler, reply
from reconciler.actions import ActionOutcome, ActionRunner, StepStatus
from reconciler.clock import VirtualClock
from reconciler.model.maps import Action

H1, H2, H3 = host("h1"), host("h2"), host("h3")
ACT = action(name="deploy", command="sleep 3; touch marker", timeout_secs=60)


def run(respond: Handler, hosts: list[Host], act: Action = ACT) -> ActionOutcome:
    runner = ActionRunner(FakeTransport(respond), clock=VirtualClock())

    async def go() -> ActionOutcome:
        return await runner.run_action("shop", "api", act, hosts)

    return asyncio.run(go())


def test_a_connection_lost_after_the_start_is_unknown_and_the_others_keep_their_result() -> None:
    async def respond(h: Host, command: str, limit: float) -> CommandResult:
        if h.name == "h2":
            raise ConnectionLost("h2", "Connection lost", stdout="half of it\n")
        return reply(h, command, stdout="done\n")

    outcome = run(respond, [H1, H2, H3])
    assert outcome.result == "unknown"
    assert not outcome.succeeded
    assert [h.result for h in outcome.hosts] == ["succeeded", "unknown", "succeeded"]
    lost = outcome.hosts[1]
    assert lost.started
    assert (lost.exit_status, lost.lost) == (None, "Connection lost")
    assert lost.reason == (
        "outcome unknown: connection lost after the command was sent: Connection lost"
    )
    assert outcome.reason == f"h2: {lost.reason}"
    record = outcome.to_json()
    assert record["result"] == "unknown"
    assert record["succeeded"] is False
    assert record["results"] == {"h1": "succeeded", "h2": "unknown", "h3": "succeeded"}
    assert record["hosts"][1]["lost"] == "Connection lost"  # type: ignore[index]
    json.dumps(record)


@pytest.mark.parametrize(
    "error",
    [
        HostUnreachable("h1", "connection refused"),
        HostKeyError("h1", "host key mismatch"),
        ConnectionLost("h1", "opening a channel failed", started=False),
    ],
    ids=["refused", "host-key", "lost-before-sending"],
)
def test_a_command_that_never_started_failed_not_started(error: AgentlessError) -> None:
    async def respond(h: Host, command: str, limit: float) -> CommandResult:
        raise error

    outcome = run(respond, [H1])
    assert outcome.result == "failed"
    [h1] = outcome.hosts
    assert not h1.started
    assert h1.reason is not None
    assert h1.reason.startswith("not started: host unreachable: ")
    assert outcome.to_json()["hosts"][0]["started"] is False  # type: ignore[index]


def test_an_engine_error_after_the_start_is_unknown() -> None:
    async def respond(h: Host, command: str, limit: float) -> CommandResult:
        raise AgentlessError("h1: internal error")

    outcome = run(respond, [H1])
    assert outcome.result == "unknown"
    assert outcome.hosts[0].reason == "outcome unknown: h1: internal error"


def test_a_timeout_with_an_exit_status_failed_one_abandoned_by_the_client_is_unknown() -> None:
    async def respond(h: Host, command: str, limit: float) -> CommandResult:
        timed = reply(h, command, timed_out=True, duration_s=limit)
        if h.name == "h2":  # the client closed the channel: no exit status came back
            return CommandResult(
                timed.host, command, None, "", "", limit, timed_out=True, abandoned=True
            )
        return timed  # the remote timeout killed it and said so

    outcome = run(respond, [H1, H2])
    assert [h.result for h in outcome.hosts] == ["failed", "unknown"]
    assert outcome.hosts[0].reason == "timed out after 60.0s"
    assert outcome.hosts[1].reason == "outcome unknown: no exit status 60.0s after it was sent"
    assert outcome.result == "failed"  # one host certainly failed


def test_one_host_failed_and_one_unknown_is_failed_overall_with_both_results() -> None:
    async def respond(h: Host, command: str, limit: float) -> CommandResult:
        if h.name == "h1":
            raise ConnectionLost("h1", "reset")
        return reply(h, command, exit_status=1)

    outcome = run(respond, [H1, H2])
    assert outcome.result == "failed"
    assert outcome.to_json()["results"] == {"h1": "unknown", "h2": "failed"}
    assert outcome.reason == "h2: exit status 1"


ASYNC = action(
    name="start",
    command="svc start",
    timeout_secs=30,
    completion_check={
        "type": "command",
        "config": {"command": "svc ready"},
        "timeout_secs": 4,
        "interval_secs": 2,
    },
    **{"async": True},
)


def run_async(respond: Handler) -> ActionOutcome:
    clock = VirtualClock()
    runner = ActionRunner(FakeTransport(respond), clock=clock)
    outcomes: list[ActionOutcome] = []

    async def go() -> None:
        async def one() -> None:
            outcomes.append(await runner.run_action("shop", "api", ASYNC, [H1]))

        async with asyncio.TaskGroup() as tg:
            tg.create_task(one())
            await clock.advance(10)

    asyncio.run(go())
    [outcome] = outcomes
    return outcome


def test_a_completion_check_that_cannot_reach_the_host_is_unknown() -> None:
    async def respond(h: Host, command: str, limit: float) -> CommandResult:
        if command == "svc start":
            return reply(h, command)
        raise ConnectionLost("h1", "reset by peer")

    outcome = run_async(respond)
    assert outcome.result == "unknown"
    completion = outcome.hosts[0].completion
    assert completion is not None
    assert (completion.passed, completion.reachable) == (False, False)
    assert outcome.hosts[0].reason is not None
    assert outcome.hosts[0].reason.startswith("outcome unknown: completion check: not OK")


def test_a_completion_check_that_ran_on_the_reachable_host_and_failed_is_failed() -> None:
    async def respond(h: Host, command: str, limit: float) -> CommandResult:
        if command == "svc start":
            return reply(h, command)
        return reply(h, command, exit_status=2, stdout="CRITICAL - not up")

    outcome = run_async(respond)
    assert outcome.result == "failed"
    completion = outcome.hosts[0].completion
    assert completion is not None
    assert (completion.passed, completion.reachable) == (False, True)
    assert outcome.to_json()["hosts"][0]["completion"]["reachable"] is True  # type: ignore[index]


SHOP = """
    name: shop
    components:
      - id: web
        dependencies: [api]
        actions: [{name: start, command: start-web}]
      - id: api
        dependencies: [db]
        actions: [{name: start, command: start-api}]
      - id: db
        actions: [{name: start, command: start-db}]
    """


def test_a_whole_map_run_stops_at_an_unknown_step_and_is_unknown() -> None:
    shop = load_map(SHOP)

    async def respond(h: Host, command: str, limit: float) -> CommandResult:
        if command == "start-api":
            raise ConnectionLost(str(h.name), "broken pipe")
        return reply(h, command)

    fake = FakeTransport(respond)
    runner = ActionRunner(fake, clock=VirtualClock())
    hosts = {c.id: [H1] for c in shop.components}
    outcome = asyncio.run(runner.run_whole_map(shop, "start", hosts))
    assert fake.commands() == ["start-db", "start-api"]  # web is not started on top of it
    assert [(s.component, s.status) for s in outcome.steps] == [
        ("db", StepStatus.SUCCEEDED),
        ("api", StepStatus.UNKNOWN),
        ("web", StepStatus.NOT_RUN),
    ]
    assert outcome.result == "unknown"
    assert outcome.to_json()["steps"][1]["status"] == "unknown"  # type: ignore[index]
