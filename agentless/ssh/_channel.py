"""SSH channels that run commands: a long-lived shell (the default) and one-shot exec.

Both are thin :class:`asyncssh.SSHClientSession` subclasses working on bytes: asyncssh's
``SSHClientProcess`` stream readers cost noticeably more client CPU per command, and the
engine's budget is a fraction of a millisecond per check.

:class:`ShellChannel` keeps one ``/bin/sh`` per channel and feeds it a **batch** of
commands in one write, run one after the other, each framed by a random per-channel
token::

    timeout -k 1 T /bin/sh -c '<command 1>' </dev/null; printf '\\n%s:%d\\n' TOKEN $?; \\
        printf '\\n%s\\n' TOKEN >&2
    { <inline command 2>
    } </dev/null; printf '\\n%s:%d\\n' TOKEN $?; printf '\\n%s\\n' TOKEN >&2

Each command still runs under its own ``timeout`` (or is :class:`~agentless.transport.
Inline`), reads ``/dev/null``, so it cannot swallow the next frame, and runs in its own
``sh -c``, so ``exit`` or ``cd`` in it do not affect the shell. The channel is driven by
asyncssh's callbacks, not by a waiting coroutine: each command's future is resolved as
its frame arrives, so a caller that is cancelled does not disturb the others of its
batch. Each command's stdout and stderr are split at their marks as packets arrive
(:class:`~agentless.ssh._frames.MarkScanner`) into sinks that keep at most
``max_output`` bytes each: a command that floods costs its cap, and its batch-mates'
frames are read as before. A client-side backstop (the command's timeout plus
:data:`CLIENT_GRACE_S`, re-armed as each command of the batch starts) closes a shell
that stopped answering.

asyncssh sends an SSH_MSG_IGNORE packet before every data packet, each with its own
``send()``; on Linux the frame is written with ``TCP_CORK`` set so both leave in one TCP
segment (one wake-up of the server instead of two, about a third of the client's CPU per
command on loopback).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncssh

from agentless.errors import ConnectionLost
from agentless.inventory import Host
from agentless.output import DEFAULT_MAX_OUTPUT, OutputSink
from agentless.result import CommandResult
from agentless.ssh._frames import FramingError, MarkScanner
from agentless.transport import KILL_AFTER_S, Inline, is_remote_timeout, remote_command

log = logging.getLogger(__name__)

#: Client-side backstop beyond the remote ``timeout``: KILL delay plus network slack.
CLIENT_GRACE_S = KILL_AFTER_S + 2.0


_CORK: int | None = getattr(socket, "TCP_CORK", None)


def _frame(command: str, timeout: float, token: bytes) -> bytes:
    """The bytes written to the shell for one command: its text, then its end marks."""
    mark = token.decode()
    body = _remote(command, isinstance(command, Inline), timeout)
    return f"{body}; printf '\\n%s:%d\\n' {mark} $?; printf '\\n%s\\n' {mark} >&2\n".encode()


@functools.lru_cache(maxsize=4096)
def _remote(command: str, inline: bool, timeout: float) -> str:
    """Probes repeat, so their remote text is cached; ``inline`` is part of the key because
    an :class:`Inline` and a plain ``str`` of the same text are equal as keys. The token is
    not: it differs per shell, so a cache keyed by it (as the whole frame was) held one
    entry per shell and check, and at 1,000 hosts missed on every frame (``_cached_frame``
    was 14% of the reconciler's busy CPU in ``benchmarks/fleet_bench.py``)."""
    text = Inline(command) if inline else str(command)
    return remote_command(text, timeout=timeout)


@dataclass(eq=False, slots=True)
class Job:
    """One command waiting for its result; the future gets a result or an
    :class:`~agentless.errors.AgentlessError` (ConnectionLost once it was sent)."""

    command: str
    timeout: float
    future: asyncio.Future[CommandResult]


class ChannelLost(Exception):
    """The channel or its connection closed; ``started`` says whether the command was sent."""

    def __init__(self, reason: str, *, started: bool) -> None:
        super().__init__(reason)
        self.started = started


class _Session(asyncssh.SSHClientSession[bytes]):
    """The channel, whether it closed, and a waiter woken when it is finished."""

    def __init__(self) -> None:
        self.chan: asyncssh.SSHClientChannel[bytes] | None = None
        self.closed = False
        self.waiter: asyncio.Future[None] | None = None

    def connection_made(self, chan: asyncssh.SSHClientChannel[bytes]) -> None:
        self.chan = chan

    def close(self) -> None:
        self.closed = True
        if self.chan is not None:
            self.chan.close()


class ShellChannel(_Session):
    """A long-lived ``/bin/sh`` on one channel, running one batch of framed commands at a
    time. ``on_done`` is called once the batch has finished or the channel has closed.
    Each command's streams are read into sinks of ``max_output`` bytes
    (:mod:`agentless.ssh._frames`)."""

    def __init__(self, max_output: int = DEFAULT_MAX_OUTPUT) -> None:
        super().__init__()
        self.token = b"OPSMAP-" + secrets.token_hex(12).encode()
        self.max_output = max_output
        self._out = MarkScanner(b"\n" + self.token + b":", with_status=True)
        self._err = MarkScanner(b"\n" + self.token + b"\n", with_status=False)
        self._sock: socket.socket | None = None
        self.conn: asyncssh.SSHClientConnection | None = None
        self.on_done: Callable[[ShellChannel], None] | None = None
        self._host: Host | None = None
        # the running batch: its jobs, and the sinks their stdout and stderr go to
        self._jobs: list[Job] = []
        self._outs: list[OutputSink] = []
        self._errs: list[OutputSink] = []
        self._head = 0
        self._started = 0.0
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    async def open(
        cls, conn: asyncssh.SSHClientConnection, *, max_output: int = DEFAULT_MAX_OUTPUT
    ) -> ShellChannel:
        factory = functools.partial(cls, max_output)
        _chan, session = await conn.create_session(factory, "exec /bin/sh", encoding=None)
        assert isinstance(session, ShellChannel)
        session.conn = conn
        session._sock = conn.get_extra_info("socket") if _CORK is not None else None
        return session

    @property
    def busy(self) -> bool:
        return self._head < len(self._jobs)

    def _write(self, data: bytes) -> None:
        assert self.chan is not None
        sock = self._sock
        if sock is None or _CORK is None:
            self.chan.write(data)
            return
        sock.setsockopt(socket.IPPROTO_TCP, _CORK, 1)
        try:
            self.chan.write(data)
        finally:
            sock.setsockopt(socket.IPPROTO_TCP, _CORK, 0)

    def start(self, host: Host, jobs: Sequence[Job]) -> None:
        """Send ``jobs`` in one frame. Raises ChannelLost (not started) if it cannot."""
        if self.closed or self.chan is None or self.busy:
            raise ChannelLost("shell channel is closed or busy", started=False)
        frame = b"".join(_frame(job.command, job.timeout, self.token) for job in jobs)
        try:
            self._write(frame)
        except (asyncssh.Error, OSError) as exc:
            self.close()
            raise ChannelLost(f"writing to the shell failed: {exc}", started=False) from exc
        self._host = host
        cap = self.max_output
        self._jobs = list(jobs)
        self._outs = [OutputSink(cap) for _ in jobs]
        self._errs = [OutputSink(cap) for _ in jobs]
        self._head = 0
        self._out.reset(self._outs)
        self._err.reset(self._errs)
        self._next_job(time.monotonic())

    def _next_job(self, now: float) -> None:
        """The head job starts (as far as the client can tell): time it, arm the backstop."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._started = now
        if self.busy:
            loop = asyncio.get_running_loop()
            timeout = self._jobs[self._head].timeout
            self._timer = loop.call_later(timeout + CLIENT_GRACE_S, self._expire)

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        """asyncssh calls this once per data packet and tops the window up after it
        returns (this session never pauses reading): nothing waits in asyncssh's buffers,
        and nothing is kept here beyond what the sinks keep."""
        try:
            (self._err if datatype == asyncssh.EXTENDED_DATA_STDERR else self._out).feed(data)
        except FramingError as exc:
            self.close()
            self._fail(f"{exc} (the host broke the command framing)")
            return
        if self.busy:
            self._advance()

    def _advance(self) -> None:
        """Resolve every job whose marks have come on both streams, in order."""
        statuses = self._out.statuses
        done = min(len(statuses), len(self._err.statuses), len(self._jobs))
        while self._head < done:
            head = self._head
            job, status = self._jobs[head], statuses[head]
            self._head = head + 1
            now = time.monotonic()
            duration = now - self._started
            assert self._host is not None
            timed_out = is_remote_timeout(status, duration, job.timeout)
            result = CommandResult.of(
                self._host.name,
                job.command,
                None if timed_out else status,
                self._outs[head],
                self._errs[head],
                duration,
                timed_out=timed_out,
            )
            if not job.future.done():
                job.future.set_result(result)
            self._next_job(now)
        if not self.busy:  # the batch is done: drop its sinks
            self._clear()
            self._done()

    def _clear(self) -> None:
        self._jobs, self._outs, self._errs, self._head = [], [], [], 0
        self._out.reset(())
        self._err.reset(())

    def _expire(self) -> None:
        """The head job outlived its timeout and the grace: give up on this shell."""
        self._timer = None
        if not self.busy or self._host is None:
            return
        head = self._head
        job = self._jobs[head]
        self._head = head + 1
        log.warning(
            "no reply %gs after timeout on %s; closing shell", CLIENT_GRACE_S, self._host.name
        )
        if not job.future.done():
            duration = time.monotonic() - self._started
            result = CommandResult.of(
                self._host.name,
                job.command,
                None,
                self._outs[head],
                self._errs[head],
                duration,
                timed_out=True,
                abandoned=True,
            )
            job.future.set_result(result)
        self.close()
        self._fail("the shell stopped answering")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(str(exc or "channel closed"))

    def _fail(self, reason: str) -> None:
        """Every job still in the batch was sent: whether it ran is unknown
        (:class:`ConnectionLost`, ``started``; the head job keeps what it printed)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        jobs, outs, errs, head = self._jobs, self._outs, self._errs, self._head
        self._clear()
        for index in range(head, len(jobs)):
            job = jobs[index]
            if not job.future.done() and self._host is not None:
                text = (outs[index].text(), errs[index].text()) if index == head else ("", "")
                lost = ConnectionLost(self._host.name, reason, stdout=text[0], stderr=text[1])
                job.future.set_exception(lost)
        self._done()

    def _done(self) -> None:
        if self.on_done is not None:
            self.on_done(self)


class ExecChannel(_Session):
    """One exec request per command: a new channel and a new remote shell each time, its
    streams read into sinks of ``max_output`` bytes."""

    def __init__(self, max_output: int = DEFAULT_MAX_OUTPUT) -> None:
        super().__init__()
        self.out = OutputSink(max_output)
        self.err = OutputSink(max_output)
        self.status: int | None = None
        self.signal: str | None = None
        self.eof = False

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        (self.err if datatype == asyncssh.EXTENDED_DATA_STDERR else self.out).feed(data)

    def exit_status_received(self, status: int) -> None:
        self.status = status

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        self.signal = signal

    def eof_received(self) -> bool:
        self.eof = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(ChannelLost(str(exc), started=True))

    @classmethod
    async def run(
        cls,
        conn: asyncssh.SSHClientConnection,
        host: Host,
        command: str,
        *,
        timeout: float,  # noqa: ASYNC109
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> CommandResult:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        try:
            _chan, session = await conn.create_session(
                functools.partial(cls, max_output),
                remote_command(command, timeout=timeout),
                encoding=None,
            )
        except (asyncssh.ChannelOpenError, asyncssh.ConnectionLost, OSError) as exc:
            raise ChannelLost(str(exc), started=False) from exc
        assert isinstance(session, ExecChannel)
        session.waiter = loop.create_future()
        if session.closed:
            session.waiter.set_result(None)
        out, err = session.out, session.err
        try:
            async with asyncio.timeout(timeout + CLIENT_GRACE_S):
                await session.waiter
        except TimeoutError:
            session.close()
            duration = time.monotonic() - started
            return CommandResult.of(
                host.name, command, None, out, err, duration, timed_out=True, abandoned=True
            )
        duration = time.monotonic() - started
        if session.status is None and session.signal is None:
            # closed without telling how the command ended: it may have run on
            raise ConnectionLost(
                host.name,
                "channel closed without an exit status",
                stdout=out.text(),
                stderr=err.text(),
            )
        timed_out = is_remote_timeout(session.status, duration, timeout)
        status = None if timed_out else session.status
        return CommandResult.of(host.name, command, status, out, err, duration, timed_out=timed_out)
