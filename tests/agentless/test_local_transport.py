"""LocalTransport and the router, on this machine."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest
from agentless_support import live_pids, wait_until

from agentless.checks.config import CommandConfig, DiskSpaceConfig, MemoryConfig, TcpConfig
from agentless.errors import CommandTimeout, HostUnreachable
from agentless.inventory import Host
from agentless.local import LocalTransport
from agentless.result import CheckState, CommandResult, HostName
from agentless.runner import CheckTarget, run_checks
from agentless.testing import FakeTransport, succeed
from agentless.transport import TransportRouter, raise_for_timeout

LOCAL = Host(name=HostName("localhost"), address="localhost", transport="local")


def test_runs_shell_text_with_separate_streams() -> None:
    async def scenario() -> None:
        t = LocalTransport()
        result = await t.run(LOCAL, "echo out | tr o O; echo err >&2; exit 4", timeout=10)
        assert (result.stdout, result.stderr, result.exit_status) == ("Out\n", "err\n", 4)
        assert not result.timed_out
        assert (await t.run(LOCAL, "cat", timeout=10)).stdout == ""  # stdin is /dev/null

    asyncio.run(scenario())


def test_timeout_kills_the_process_group_and_keeps_partial_output(tmp_path: Path) -> None:
    name = f"opsmap-l{secrets.token_hex(4)}"
    link = tmp_path / name
    link.symlink_to("/bin/sleep")

    async def scenario() -> None:
        t = LocalTransport()
        result = await t.run(LOCAL, f"echo partial; {link} 1000 & {link} 1001", timeout=0.5)
        assert result.timed_out
        assert result.exit_status is None
        assert result.stdout == "partial\n"
        assert await wait_until(lambda: not live_pids(name)), f"{name} survived"
        with pytest.raises(CommandTimeout) as raised:
            raise_for_timeout(result)
        assert raised.value.result is result

    asyncio.run(scenario())


def test_timeout_log_line_shows_a_host_name_inert(caplog: pytest.LogCaptureFixture) -> None:
    """Outside the CLI (no inert log records), a hostile host name still logs as one line."""
    host = Host(
        name=HostName("evil\nFAKE forged line \x1b]0;title\x07"), address="x", transport="local"
    )

    async def scenario() -> None:
        with caplog.at_level("INFO", logger="agentless.local"):
            assert (await LocalTransport().run(host, "sleep 30", timeout=0.2)).timed_out

    asyncio.run(scenario())
    messages = [r.getMessage() for r in caplog.records if r.name == "agentless.local"]
    assert any("evil\\x0aFAKE forged line \\x1b]0;title\\x07" in m for m in messages), messages
    assert not any(c in m for m in messages for c in "\n\x1b\x07")


def test_checks_run_locally() -> None:
    targets = [
        CheckTarget(
            "mem",
            LOCAL,
            "native:memory",
            MemoryConfig(warning_percent=99.8, critical_percent=99.9),
            10,
        ),
        CheckTarget(
            "disk",
            LOCAL,
            "native:disk_space",
            DiskSpaceConfig(warning_percent=0, critical_percent=100),
            10,
        ),
        CheckTarget("cmd", LOCAL, "command", CommandConfig(command="echo bad; exit 2"), 10),
        CheckTarget("slow", LOCAL, "command", CommandConfig(command="sleep 10"), 0.3),
    ]
    runs = asyncio.run(run_checks(targets, transport=LocalTransport()))
    assert [r.outcome.state for r in runs] == [
        CheckState.OK,
        CheckState.WARNING,
        CheckState.CRITICAL,
        CheckState.UNKNOWN,
    ]
    assert runs[3].outcome.message == "timed out after 0.3s"


def _refuse(host: Host, command: str, timeout: float) -> CommandResult:
    raise HostUnreachable(host.name, "connection refused")


def _hosts(transport: FakeTransport) -> list[str]:
    return [name for name, _command, _timeout in transport.calls]


def test_router_picks_transport_by_host() -> None:
    ssh, local = FakeTransport(succeed), FakeTransport(succeed)
    router = TransportRouter(ssh=ssh, local=local)
    remote = Host(name=HostName("web1"), address="10.0.0.1")

    async def scenario() -> None:
        await router.run(LOCAL, "true", timeout=1)
        await router.run(remote, "true", timeout=1)
        await router.aclose()

    asyncio.run(scenario())
    assert (_hosts(ssh), _hosts(local)) == (["web1"], ["localhost"])
    assert ssh.closed
    assert local.closed


def test_runner_does_not_retry_an_unreachable_host() -> None:
    dead = FakeTransport(_refuse)
    host = Host(name=HostName("db1"), address="10.0.0.2")
    targets = [CheckTarget(f"t{i}", host, "tcp", TcpConfig(port=5432), 5) for i in range(6)]
    runs = asyncio.run(run_checks(targets, transport=dead, concurrency=1))
    assert _hosts(dead) == ["db1"]
    assert all(r.outcome.state is CheckState.UNKNOWN and r.host_unreachable for r in runs)
    assert {r.outcome.message for r in runs} == {"host unreachable: connection refused"}
