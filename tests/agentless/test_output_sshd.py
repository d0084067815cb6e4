"""Output bounded while it is read, over a real sshd: a command that floods keeps its cap
and leaves its batch-mates' frames whole; any bytes a host sends, lookalike marks
included, come back to the right command (hypothesis); a host that forges marks with the
shell's own token breaks only its own shell."""

from __future__ import annotations

import asyncio
import base64
import codecs
import hashlib
import shlex
from collections.abc import Awaitable, Callable, Sequence

import pytest
from agentless_support import transport_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sshd import Fleet, Sshd

from agentless.errors import ConnectionLost
from agentless.inventory import Host
from agentless.ssh import Mode, SshTransport
from agentless.ssh._channel import Job, ShellChannel

pytestmark = pytest.mark.sshd
MODES = pytest.mark.parametrize("mode", ["shell", "exec"])
FLOOD = 5_000_000


@pytest.fixture(scope="module")
def servers(sshd_fleet: Fleet) -> list[Sshd]:
    return sshd_fleet.start(2)


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


def printing(out: bytes, err: bytes, status: int) -> str:
    """Shell text that prints exactly ``out`` and ``err`` (any bytes) and exits ``status``."""
    put = "printf %s {} | base64 -d"
    return "; ".join(
        [
            put.format(shlex.quote(base64.b64encode(out).decode())),
            put.format(shlex.quote(base64.b64encode(err).decode())) + " >&2",
            f"exit {status}",
        ]
    )


def kept_text(data: bytes, cap: int) -> str:
    if len(data) > cap:
        return codecs.getincrementaldecoder("utf-8")("replace").decode(data[:cap])
    return data.decode("utf-8", "replace")


@MODES
def test_a_flood_keeps_its_cap_and_its_batch_mates_keep_their_frames(
    sshd_fleet: Fleet, servers: list[Sshd], mode: Mode
) -> None:
    host = sshd_fleet.host(servers[0])
    flood = f"head -c {FLOOD} /dev/zero; echo oops >&2; exit 2"

    async def body(t: SshTransport) -> None:
        before, flooded, after = await asyncio.gather(
            t.run(host, "echo before; echo e1 >&2", timeout=30),
            t.run(host, flood, timeout=30),
            t.run(host, "echo after; exit 1", timeout=30),
        )
        assert (before.stdout, before.stderr, before.exit_status) == ("before\n", "e1\n", 0)
        assert (after.stdout, after.stderr, after.exit_status) == ("after\n", "", 1)
        assert not before.truncated
        assert not after.truncated
        assert flooded.exit_status == 2
        assert flooded.stdout == "\0" * 4096
        assert (flooded.stdout_dropped, flooded.stderr) == (FLOOD - 4096, "oops\n")
        assert flooded.stdout_sha256 == hashlib.sha256(b"\0" * FLOOD).hexdigest()
        assert flooded.over_cap == (
            f"output over 4096 bytes (stdout {FLOOD} bytes; the rest was dropped)"
        )
        later = await t.run(host, "echo later", timeout=30)
        assert (later.stdout, later.exit_status) == ("later\n", 0)
        assert t.connections_opened(host) == 1

    with_transport(sshd_fleet, body, mode=mode, max_output=4096, per_host_limit=1)


STREAMS = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from([b"\n", b"\nOPSMAP-", b"\nOPSMAP-0123abcd:0\n", b"\nOPSMAP-0123\n"]),
    ),
    max_size=8,
).map(b"".join)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    commands=st.lists(st.tuples(STREAMS, STREAMS, st.integers(0, 255)), min_size=1, max_size=4),
    cap=st.integers(min_value=1, max_value=64),
)
def test_any_bytes_from_the_host_come_back_to_their_command(
    sshd_fleet: Fleet,
    servers: list[Sshd],
    commands: Sequence[tuple[bytes, bytes, int]],
    cap: int,
) -> None:
    """One batch on one kept shell: each command's first ``cap`` bytes, its counts, the
    sha256 of all it printed and its status, whatever bytes (and lookalike marks)."""
    host = sshd_fleet.host(servers[0])

    async def body(t: SshTransport) -> None:
        results = await asyncio.gather(
            *(t.run(host, printing(o, e, s), timeout=30) for o, e, s in commands)
        )
        for (out, err, status), result in zip(commands, results, strict=True):
            assert result.exit_status == status
            assert (result.stdout, result.stderr) == (kept_text(out, cap), kept_text(err, cap))
            assert result.stdout_dropped == max(len(out) - cap, 0)
            assert result.stderr_dropped == max(len(err) - cap, 0)
            assert result.stdout_sha256 == hashlib.sha256(out).hexdigest()
            assert result.stderr_sha256 == hashlib.sha256(err).hexdigest()

    with_transport(sshd_fleet, body, max_output=cap, per_host_limit=1)


def forging(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands get the shell's own token for ``@TOKEN@``: a compromised host knows it."""
    start = ShellChannel.start

    def start_forged(self: ShellChannel, to: Host, jobs: Sequence[Job]) -> None:
        for job in jobs:
            job.command = job.command.replace("@TOKEN@", self.token.decode())
        start(self, to, jobs)

    monkeypatch.setattr(ShellChannel, "start", start_forged)


def test_a_host_that_forges_a_bad_mark_loses_its_shell_and_no_more(
    sshd_fleet: Fleet, servers: list[Sshd], monkeypatch: pytest.MonkeyPatch
) -> None:
    forging(monkeypatch)
    forger, other = (sshd_fleet.host(s) for s in servers)

    async def body(t: SshTransport) -> None:
        bad = t.run(forger, "printf '\\n%s:x\\n' @TOKEN@; sleep 1", timeout=30)
        outcomes = await asyncio.gather(
            bad, t.run(other, "echo fine", timeout=30), return_exceptions=True
        )
        assert isinstance(outcomes[0], ConnectionLost)
        assert "framing" in outcomes[0].reason
        assert not isinstance(outcomes[1], BaseException)
        assert outcomes[1].stdout == "fine\n"
        again = await t.run(forger, "echo again", timeout=30)
        assert again.stdout == "again\n"

    with_transport(sshd_fleet, body, per_host_limit=1)


def test_a_host_that_forges_good_marks_moves_its_own_output_and_no_more(
    sshd_fleet: Fleet, servers: list[Sshd], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Output shifts between the forger's own commands (its results are its own to lie
    about anyway); every caller gets an answer, nothing past the cap is kept, and the
    other host is not touched."""
    forging(monkeypatch)
    forger, other = (sshd_fleet.host(s) for s in servers)
    forged = (
        "printf 'a\\n%s:7\\nb' @TOKEN@; printf '\\n%s\\n' @TOKEN@ >&2; head -c 100000 /dev/zero"
    )

    async def body(t: SshTransport) -> None:
        results = await asyncio.gather(
            t.run(forger, forged, timeout=30),
            t.run(forger, "echo second", timeout=30),
            t.run(other, "echo fine", timeout=30),
        )
        assert results[0].stdout == "a"
        assert results[0].exit_status == 7  # what the host said: its own result
        assert all(len(r.stdout.encode()) <= 4096 for r in results)
        assert results[2].stdout == "fine\n"
        assert (await t.run(other, "echo still", timeout=30)).stdout == "still\n"

    with_transport(sshd_fleet, body, per_host_limit=1, max_output=4096)


def test_a_host_that_floods_without_end_stalls_no_other_host(
    sshd_fleet: Fleet, servers: list[Sshd]
) -> None:
    """While one host sends zeros without end, another host's command comes back (and
    the flooding one is still running: it holds its cap, not the loop)."""
    flooder, other = (sshd_fleet.host(s) for s in servers)

    async def body(t: SshTransport) -> None:
        flooding = asyncio.ensure_future(t.run(flooder, "cat /dev/zero", timeout=120))
        await t.run(flooder, ":", timeout=30)  # sent in the same frame, just before the flood
        await asyncio.sleep(0.5)  # the flood runs meanwhile (no assertion on time)
        answers = [await t.run(other, f"echo {i}", timeout=30) for i in range(3)]
        assert [a.stdout for a in answers] == ["0\n", "1\n", "2\n"]
        assert not flooding.done()
        flooding.cancel()

    with_transport(sshd_fleet, body)
