"""SshTransport against real OpenSSH servers: reuse, timeouts, host keys, reconnects."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

import pytest
from agentless_support import live_pids, transport_for, wait_until
from sshd import Fleet, Sshd, free_port

from agentless.errors import HostKeyError, HostUnreachable
from agentless.inventory import Host
from agentless.local import LocalTransport
from agentless.ssh import Mode, SshTransport
from agentless.ssh._channel import Job, ShellChannel
from agentless.transport import Inline, TransportRouter

pytestmark = pytest.mark.sshd
MODES = pytest.mark.parametrize("mode", ["shell", "exec"])


@pytest.fixture(scope="module")
def server(sshd_fleet: Fleet) -> Sshd:
    [one] = sshd_fleet.start(1)
    return one


def with_transport(
    fleet: Fleet, body: Callable[[SshTransport], Awaitable[None]], **kwargs: object
) -> None:
    async def scenario() -> None:
        transport = transport_for(fleet, **kwargs)
        try:
            await body(transport)
        finally:
            await transport.aclose()

    asyncio.run(scenario())


@MODES
def test_runs_command_and_separates_streams(sshd_fleet: Fleet, server: Sshd, mode: Mode) -> None:
    host = sshd_fleet.host(server)

    async def body(t: SshTransport) -> None:
        result = await t.run(host, "echo out; echo err >&2; id -un; exit 3", timeout=10)
        assert (result.exit_status, result.timed_out) == (3, False)
        assert result.stdout == f"out\n{sshd_fleet.user}\n"
        assert result.stderr == "err\n"
        bare = await t.run(host, "printf 'no newline'", timeout=10)
        assert bare.stdout == "no newline"
        assert bare.exit_status == 0
        quoted = await t.run(host, "printf '%s|' \"a b\" 'c'\"'\"'d'; cd /; exit 0", timeout=10)
        assert quoted.stdout == "a b|c'd|"

    with_transport(sshd_fleet, body, mode=mode)


@MODES
def test_reuses_one_connection_for_many_commands(
    sshd_fleet: Fleet, server: Sshd, mode: Mode
) -> None:
    host = sshd_fleet.host(server)
    accepted_before = server.log.read_text().count("Accepted publickey")

    async def body(t: SshTransport) -> None:
        results = await asyncio.gather(*(t.run(host, f"echo {i}", timeout=10) for i in range(40)))
        assert [r.stdout for r in results] == [f"{i}\n" for i in range(40)]
        for i in range(10):
            assert (await t.run(host, f"echo {i}", timeout=10)).stdout == f"{i}\n"
        assert t.connections_opened(host) == 1

    with_transport(sshd_fleet, body, mode=mode)
    assert server.log.read_text().count("Accepted publickey") == accepted_before + 1


@MODES
def test_timeout_kills_the_command_and_its_children(
    sshd_fleet: Fleet, server: Sshd, mode: Mode
) -> None:
    name = f"opsmap-t{secrets.token_hex(4)}"
    link = sshd_fleet.workdir / name
    link.symlink_to("/bin/sleep")
    host = sshd_fleet.host(server)

    async def body(t: SshTransport) -> None:
        command = f"echo started; {link} 1000 & {link} 1001; wait"
        result = await t.run(host, command, timeout=1.0)
        assert result.timed_out
        assert result.exit_status is None
        assert result.stdout == "started\n"
        assert await wait_until(lambda: not live_pids(name)), f"{name} survived its timeout"
        after = await t.run(host, "echo still usable", timeout=10)
        assert after.stdout == "still usable\n"

    with_transport(sshd_fleet, body, mode=mode)


def test_unreachable_port_raises_and_backs_off(sshd_fleet: Fleet) -> None:
    server = Sshd(
        "nothing", free_port(), sshd_fleet.workdir, sshd_fleet.workdir, sshd_fleet.workdir
    )
    host = sshd_fleet.host(server)

    async def body(t: SshTransport) -> None:
        with pytest.raises(HostUnreachable, match="refused") as first:
            await t.run(host, "true", timeout=5)
        assert first.value.retry_after_s is not None
        with pytest.raises(HostUnreachable, match="next attempt in"):
            await t.run(host, "true", timeout=5)

    with_transport(sshd_fleet, body)


def test_changed_host_key_is_refused(sshd_fleet: Fleet) -> None:
    [server] = sshd_fleet.start(1)
    host = sshd_fleet.host(server)

    async def body(t: SshTransport) -> None:
        assert (await t.run(host, "echo trusted", timeout=10)).stdout == "trusted\n"
        sshd_fleet.restart(server, new_host_key=True)
        assert await wait_until(lambda: not t.is_connected(host))
        with pytest.raises(HostKeyError):
            await t.run(host, "echo accepted", timeout=10)

    with_transport(sshd_fleet, body, backoff_base_s=0.0)
    # A fresh transport (no state at all) refuses it too.
    with_transport(sshd_fleet, _expect_host_key_error(host))


def _expect_host_key_error(host: object) -> Callable[[SshTransport], Awaitable[None]]:
    async def body(t: SshTransport) -> None:
        with pytest.raises(HostKeyError):
            await t.run(host, "true", timeout=10)  # type: ignore[arg-type]

    return body


def test_pinned_host_key(sshd_fleet: Fleet, server: Sshd) -> None:
    pinned = sshd_fleet.host(server, known_hosts=None, host_key=sshd_fleet.public_host_key(server))
    [other] = sshd_fleet.start(1)
    wrong = replace(pinned, host_key=sshd_fleet.public_host_key(other))

    async def body(t: SshTransport) -> None:
        assert (await t.run(pinned, "echo pinned", timeout=10)).stdout == "pinned\n"
        with pytest.raises(HostKeyError):
            await t.run(wrong, "true", timeout=10)

    with_transport(sshd_fleet, body)


def test_unknown_host_is_refused(sshd_fleet: Fleet, server: Sshd) -> None:
    empty = sshd_fleet.workdir / "empty_known_hosts"
    empty.write_text("")
    host = sshd_fleet.host(server, known_hosts=str(empty))
    with_transport(sshd_fleet, _expect_host_key_error(host))


def test_no_known_hosts_at_all_is_refused(sshd_fleet: Fleet, server: Sshd) -> None:
    host = sshd_fleet.host(server, known_hosts=None)
    with_transport(sshd_fleet, _expect_host_key_error(host), default_known_hosts=None)


@MODES
def test_reconnects_after_sshd_restart(sshd_fleet: Fleet, mode: Mode) -> None:
    [server] = sshd_fleet.start(1)
    host = sshd_fleet.host(server)

    async def body(t: SshTransport) -> None:
        assert (await t.run(host, "echo one", timeout=10)).stdout == "one\n"
        sshd_fleet.restart(server)
        assert await wait_until(lambda: not t.is_connected(host))
        assert (await t.run(host, "echo two", timeout=10)).stdout == "two\n"
        assert t.connections_opened(host) == 2

    with_transport(sshd_fleet, body, mode=mode)


def test_jump_host(sshd_fleet: Fleet) -> None:
    jump, target = sshd_fleet.start(2)
    jump_host = sshd_fleet.host(jump)
    via_name = sshd_fleet.host(target, jump_host=jump.name)
    via_spec = sshd_fleet.host(target, jump_host=f"{sshd_fleet.user}@127.0.0.1:{jump.port}")

    async def body(t: SshTransport) -> None:
        assert (await t.run(via_name, "echo hop", timeout=10)).stdout == "hop\n"
        assert t.connections_opened(jump_host) == 1
        assert (await t.run(via_spec, "echo hop2", timeout=10)).stdout == "hop2\n"

    with_transport(sshd_fleet, body, hosts={jump.name: jump_host})
    sshd_fleet.stop(jump)

    async def jump_down(t: SshTransport) -> None:
        with pytest.raises(HostUnreachable, match="via jump host"):
            await t.run(via_name, "true", timeout=10)

    with_transport(sshd_fleet, jump_down, hosts={jump.name: jump_host})


def test_commands_of_one_tick_share_one_shell_and_keep_their_own_results(
    sshd_fleet: Fleet, server: Sshd
) -> None:
    """One batch: one shell runs them all (an Inline `echo $$` prints that shell's pid)."""
    host = sshd_fleet.host(server)
    commands = [f"echo out{i}; echo err{i} >&2; exit {i}" for i in range(4)]

    async def body(t: SshTransport) -> None:
        results = await asyncio.gather(
            *(t.run(host, c, timeout=10) for c in commands),
            *(t.run(host, Inline("echo $$"), timeout=10) for _ in range(3)),
        )
        for i, result in enumerate(results[:4]):
            assert (result.stdout, result.stderr, result.exit_status) == (
                f"out{i}\n",
                f"err{i}\n",
                i,
            )
        pids = {r.stdout for r in results[4:]}
        assert len(pids) == 1, pids
        # The next tick's batch finds the same shell idle.
        assert (await t.run(host, Inline("echo $$"), timeout=10)).stdout in pids

    with_transport(sshd_fleet, body)


def test_a_timeout_inside_a_batch_spares_the_rest(sshd_fleet: Fleet, server: Sshd) -> None:
    host = sshd_fleet.host(server)

    async def body(t: SshTransport) -> None:
        # connected first: the 1 s timeout is then the command's alone, not a login's on a
        # loaded machine (where 'partial' could otherwise not be printed in time)
        assert (await t.run(host, "true", timeout=10)).exit_status == 0
        before, slow, after = await asyncio.gather(
            t.run(host, "echo before", timeout=10),
            t.run(host, "echo partial; sleep 30", timeout=1),
            t.run(host, "echo after", timeout=10),
        )
        assert (before.stdout, before.exit_status) == ("before\n", 0)
        assert (slow.timed_out, slow.exit_status, slow.stdout) == (True, None, "partial\n")
        assert (after.stdout, after.exit_status) == ("after\n", 0)

    with_transport(sshd_fleet, body)


def test_a_cancelled_caller_does_not_disturb_the_others(sshd_fleet: Fleet, server: Sshd) -> None:
    host = sshd_fleet.host(server)

    async def body(t: SshTransport) -> None:
        first = asyncio.ensure_future(t.run(host, "sleep 0.5; echo first", timeout=10))
        second = asyncio.ensure_future(t.run(host, "echo second", timeout=10))
        await asyncio.sleep(0.1)
        first.cancel()
        assert (await second).stdout == "second\n"
        with pytest.raises(asyncio.CancelledError):
            await first
        assert (await t.run(host, "echo later", timeout=10)).stdout == "later\n"
        assert t.connections_opened(host) == 1

    with_transport(sshd_fleet, body)


@MODES
def test_inline_text_runs_in_both_modes(sshd_fleet: Fleet, server: Sshd, mode: Mode) -> None:
    host = sshd_fleet.host(server)
    text = Inline('read -r k v _ </proc/meminfo; echo "$k"\nread -r line; echo "[$line]"')

    async def body(t: SshTransport) -> None:
        result = await t.run(host, text, timeout=10)
        # stdin is /dev/null even for inline text: it cannot read the next frame.
        assert (result.stdout, result.exit_status) == ("MemTotal:\n[]\n", 0)

    with_transport(sshd_fleet, body, mode=mode)


def test_connections_counts_the_hosts_connected_now(sshd_fleet: Fleet) -> None:
    first, second = sshd_fleet.start(2)
    hosts = [sshd_fleet.host(first), sshd_fleet.host(second)]
    seen: list[int] = []

    async def body(t: SshTransport) -> None:
        seen.append(t.connections)
        for host in hosts:
            assert (await t.run(host, "true", timeout=10)).ok
            seen.append(t.connections)
        await t.run(hosts[0], "true", timeout=10)  # one connection per host, kept
        seen.append(t.connections)
        router = TransportRouter(ssh=t, local=LocalTransport())
        seen.append(router.connections)
        await t.aclose()
        seen.append(t.connections)

    with_transport(sshd_fleet, body)
    assert seen == [0, 1, 2, 2, 2, 0]


def test_commands_that_wait_for_the_inflight_bound_still_go_out_as_one_frame(
    sshd_fleet: Fleet, server: Sshd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the bound taken, a host's commands of one tick wait together and leave as one
    batch once a slot frees (waiting one by one, each went out alone)."""
    host = sshd_fleet.host(server)
    frames: list[int] = []
    sent = asyncio.Event()
    start = ShellChannel.start

    def counted(self: ShellChannel, to: Host, jobs: Sequence[Job]) -> None:
        frames.append(len(jobs))
        sent.set()
        start(self, to, jobs)

    monkeypatch.setattr(ShellChannel, "start", counted)

    async def body(t: SshTransport) -> None:
        # holds the one slot while the five queue up (20 loop ticks, not 2 s, on any machine)
        hold = asyncio.ensure_future(t.run(host, "sleep 2; echo held", timeout=30))
        await asyncio.wait_for(sent.wait(), 30)  # the holding command is out: no slot left
        waiting = asyncio.gather(*(t.run(host, f"echo {i}", timeout=10) for i in range(5)))
        for _ in range(20):
            await asyncio.sleep(0)  # every command queued, the dispatcher waits for room
        assert frames == [1]
        assert (await hold).stdout == "held\n"
        results = await waiting
        assert [r.stdout for r in results] == [f"{i}\n" for i in range(5)]

    with_transport(sshd_fleet, body, max_inflight=1)
    assert frames == [1, 5]
