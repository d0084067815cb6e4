"""A connection cut while a command runs: ConnectionLost (it may have run), never a result.

Each test has its own sshd, whose serving processes it SIGKILLs mid-command (the listener
and the command itself live on): the client sees the drop, the command finishes anyway.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from agentless_support import transport_for, wait_until
from sshd import Fleet, Sshd, free_port

from agentless.errors import ConnectionLost, HostUnreachable
from agentless.ssh import Mode

pytestmark = pytest.mark.sshd


@pytest.fixture
def own_server(sshd_fleet: Fleet) -> Iterator[Sshd]:
    [server] = sshd_fleet.start(1)
    try:
        yield server
    finally:
        sshd_fleet.stop(server)


@pytest.fixture
def site(sshd_fleet: Fleet) -> Path:
    """A directory the test user may write to."""
    path = sshd_fleet.workdir / f"lost-{secrets.token_hex(4)}"
    path.mkdir()
    path.chmod(0o777)
    return path


@pytest.mark.parametrize("mode", ["shell", "exec"])
def test_a_cut_mid_command_raises_connection_lost_and_the_command_goes_on(
    sshd_fleet: Fleet, own_server: Sshd, site: Path, mode: Mode
) -> None:
    host = sshd_fleet.host(own_server)
    started, marker = site / "started", site / "marker"

    async def scenario() -> None:
        transport = transport_for(sshd_fleet, mode=mode)
        try:
            assert (await transport.run(host, "true", timeout=10)).exit_status == 0
            running = asyncio.ensure_future(
                transport.run(host, f"touch {started}; sleep 3; touch {marker}", timeout=30)
            )
            assert await wait_until(started.exists, within=20), "the command never started"
            assert sshd_fleet.cut_connections(own_server) > 0
            with pytest.raises(ConnectionLost) as lost:
                await running
            assert lost.value.started
            assert str(lost.value).startswith(f"{host.name}: connection lost: ")
            # the command was not stopped by the drop: it finishes on the host
            assert await wait_until(marker.exists, within=30), "the command did not go on"
            # the next command reconnects
            again = await transport.run(host, "echo again", timeout=10)
            assert again.stdout == "again\n"
            assert transport.connections_opened(host) == 2
        finally:
            await transport.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize("mode", ["shell", "exec"])
def test_a_server_that_stops_answering_gives_an_abandoned_timeout(
    sshd_fleet: Fleet, own_server: Sshd, site: Path, mode: Mode
) -> None:
    """No exit status ever comes back: the client gives up, and says it did (``abandoned``),
    unlike a command its remote ``timeout`` killed, whose exit status came back."""
    host = sshd_fleet.host(own_server)
    started = site / "started"

    async def scenario() -> None:
        transport = transport_for(sshd_fleet, mode=mode)
        try:
            killed = await transport.run(host, "sleep 5", timeout=0.5)
            assert (killed.timed_out, killed.abandoned) == (True, False)
            running = asyncio.ensure_future(
                transport.run(host, f"touch {started}; sleep 1", timeout=0.5)
            )
            assert await wait_until(started.exists, within=20), "the command never started"
            assert sshd_fleet.signal_sessions(own_server, signal.SIGSTOP) > 0
            try:
                result = await running
            finally:
                sshd_fleet.signal_sessions(own_server, signal.SIGCONT)
            assert (result.timed_out, result.abandoned, result.exit_status) == (True, True, None)
        finally:
            await transport.aclose()

    asyncio.run(scenario())


def test_a_host_that_cannot_be_reached_never_started_the_command(sshd_fleet: Fleet) -> None:
    dead = Sshd("dead", free_port(), Path("/nonexistent"), Path("/nonexistent"), Path("/dev/null"))
    host = sshd_fleet.host(dead)

    async def scenario() -> None:
        transport = transport_for(sshd_fleet)
        try:
            with pytest.raises(HostUnreachable) as refused:
                await transport.run(host, "touch /tmp/never", timeout=10)
            assert refused.value.started is False
        finally:
            await transport.aclose()

    asyncio.run(scenario())
