"""agentless.testing.FakeTransport: the handler answers, every call is recorded."""

from __future__ import annotations

import asyncio

import pytest

from agentless.errors import ConnectionLost
from agentless.inventory import Host
from agentless.result import CommandResult, HostName
from agentless.testing import FakeTransport, reply, succeed
from agentless.transport import Transport

WEB = Host(name=HostName("web1"), address="10.0.0.1")
DB = Host(name=HostName("db1"), address="10.0.0.2")


def test_a_sync_handler_answers_and_every_call_is_kept() -> None:
    def handler(host: Host, command: str, timeout: float) -> CommandResult:
        return reply(host, command, exit_status=3, stdout=f"{host.name} {timeout:g}\n")

    fake = FakeTransport(handler)
    transport: Transport = fake

    async def scenario() -> list[CommandResult]:
        return [
            await transport.run(WEB, "uptime", timeout=2),
            await transport.run(DB, "df", timeout=5),
        ]

    first, second = asyncio.run(scenario())
    assert (first.exit_status, first.stdout, first.command) == (3, "web1 2\n", "uptime")
    assert second.stdout == "db1 5\n"
    assert fake.calls == [("web1", "uptime", 2), ("db1", "df", 5)]
    assert fake.commands("db1") == ["df"]


def test_an_async_handler_is_awaited_and_concurrency_is_counted() -> None:
    arrived: list[str] = []
    release = asyncio.Event()

    async def handler(host: Host, command: str, limit: float) -> CommandResult:
        arrived.append(command)
        if len(arrived) == 3:
            release.set()
        await release.wait()
        return reply(host, command)

    fake = FakeTransport(handler)

    async def scenario() -> list[CommandResult]:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(fake.run(WEB, f"c{i}", timeout=1)) for i in range(3)]
        return [task.result() for task in tasks]

    results = asyncio.run(scenario())
    assert [r.ok for r in results] == [True, True, True]
    assert fake.max_running == {"web1": 3}
    assert fake.running == {"web1": 0}


def test_an_error_the_handler_raises_reaches_the_caller() -> None:
    def handler(host: Host, command: str, timeout: float) -> CommandResult:
        raise ConnectionLost(host.name, "reset by peer")

    fake = FakeTransport(handler)
    with pytest.raises(ConnectionLost):
        asyncio.run(fake.run(WEB, "deploy", timeout=1))
    assert fake.calls == [("web1", "deploy", 1)]
    assert fake.running == {"web1": 0}


def test_succeed_and_aclose() -> None:
    fake = FakeTransport(succeed)
    done = asyncio.run(fake.run(WEB, "true", timeout=1))
    assert done.ok
    assert (done.stdout, done.stderr) == ("", "")
    assert not fake.closed
    asyncio.run(fake.aclose())
    assert fake.closed
