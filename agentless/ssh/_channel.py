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
batch. A client-side backstop (the command's timeout plus :data:`CLIENT_GRACE_S`,
re-armed as each command of the batch starts) closes a shell that stopped answering.

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
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncssh

from agentless.errors import ConnectionLost
from agentless.inventory import Host
from agentless.result import CommandResult
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


class _Collector(asyncssh.SSHClientSession[bytes]):
    """Buffers stdout/stderr of one channel and wakes a waiter on a condition."""

    def __init__(self) -> None:
        self.chan: asyncssh.SSHClientChannel[bytes] | None = None
        self.out = bytearray()
        self.err = bytearray()
        self.closed = False
        self.waiter: asyncio.Future[None] | None = None

    def connection_made(self, chan: asyncssh.SSHClientChannel[bytes]) -> None:
        self.chan = chan

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if datatype == asyncssh.EXTENDED_DATA_STDERR:
            self.err += data
        else:
            self.out += data
        self.poke()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ChannelLost(str(exc or "channel closed"), started=True))

    def poke(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done() and self.finished():
            waiter.set_result(None)

    def finished(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True
        if self.chan is not None:
            self.chan.close()


class ShellChannel(_Collector):
    """A long-lived ``/bin/sh`` on one channel, running one batch of framed commands at a
    time. ``on_done`` is called once the batch has finished or the channel has closed."""

    def __init__(self) -> None:
        super().__init__()
        self.token = b"OPSMAP-" + secrets.token_hex(12).encode()
        self._out_marker = b"\n" + self.token + b":"
        self._err_marker = b"\n" + self.token + b"\n"
        self._sock: socket.socket | None = None
        self.conn: asyncssh.SSHClientConnection | None = None
        self.on_done: Callable[[ShellChannel], None] | None = None
        self._host: Host | None = None
        self._jobs: deque[Job] = deque()
        self._status: int | None = None
        self._out_at = self._out_scan = self._out_pos = self._err_pos = 0
        self._started = 0.0
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    async def open(cls, conn: asyncssh.SSHClientConnection) -> ShellChannel:
        _chan, session = await conn.create_session(cls, "exec /bin/sh", encoding=None)
        assert isinstance(session, ShellChannel)
        session.conn = conn
        session._sock = conn.get_extra_info("socket") if _CORK is not None else None
        return session

    @property
    def busy(self) -> bool:
        return bool(self._jobs)

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
        if self.closed or self.chan is None or self._jobs:
            raise ChannelLost("shell channel is closed or busy", started=False)
        frame = b"".join(_frame(job.command, job.timeout, self.token) for job in jobs)
        try:
            self._write(frame)
        except (asyncssh.Error, OSError) as exc:
            self.close()
            raise ChannelLost(f"writing to the shell failed: {exc}", started=False) from exc
        self._host = host
        self._jobs.extend(jobs)
        self._next_job(time.monotonic())

    def _next_job(self, now: float) -> None:
        """The head job starts (as far as the client can tell): time it, arm the backstop."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._started = now
        self._status = None
        if self._jobs:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._jobs[0].timeout + CLIENT_GRACE_S, self._expire)

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if datatype == asyncssh.EXTENDED_DATA_STDERR:
            self.err += data
        else:
            self.out += data
        if self._jobs:
            self._advance()

    def _advance(self) -> None:
        """Resolve every job whose frame is complete on both streams."""
        out, err = self.out, self.err
        while self._jobs:
            if self._status is None:
                at = out.find(self._out_marker, self._out_scan)
                if at < 0:
                    self._out_scan = max(self._out_pos, len(out) - len(self._out_marker))
                    return
                newline = out.find(b"\n", at + len(self._out_marker))
                if newline < 0:
                    self._out_scan = at
                    return
                self._status = int(out[at + len(self._out_marker) : newline])
                self._out_at = at
                self._out_scan = newline + 1
            end_err = err.find(self._err_marker, self._err_pos)
            if end_err < 0:
                return
            job = self._jobs.popleft()
            now = time.monotonic()
            duration = now - self._started
            stdout = out[self._out_pos : self._out_at].decode("utf-8", "replace")
            stderr = err[self._err_pos : end_err].decode("utf-8", "replace")
            self._out_pos = self._out_scan
            self._err_pos = end_err + len(self._err_marker)
            assert self._host is not None
            if is_remote_timeout(self._status, duration, job.timeout):
                result = _timed_out(self._host, job.command, stdout, stderr, duration)
            else:
                result = CommandResult(
                    self._host.name, job.command, self._status, stdout, stderr, duration
                )
            if not job.future.done():
                job.future.set_result(result)
            self._next_job(now)
        # The batch is done: start the next one on empty buffers.
        out.clear()
        err.clear()
        self._out_scan = self._out_pos = self._err_pos = 0
        self._done()

    def _expire(self) -> None:
        """The head job outlived its timeout and the grace: give up on this shell."""
        self._timer = None
        if not self._jobs or self._host is None:
            return
        job = self._jobs.popleft()
        log.warning(
            "no reply %gs after timeout on %s; closing shell", CLIENT_GRACE_S, self._host.name
        )
        if not job.future.done():
            out = self.out[self._out_pos :]
            err = self.err[self._err_pos :]
            duration = time.monotonic() - self._started
            result = _timed_out(self._host, job.command, out, err, duration, abandoned=True)
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
        out = self.out[self._out_pos :].decode("utf-8", "replace")
        err = self.err[self._err_pos :].decode("utf-8", "replace")
        while self._jobs:
            job = self._jobs.popleft()
            if not job.future.done() and self._host is not None:
                lost = ConnectionLost(self._host.name, reason, stdout=out, stderr=err)
                job.future.set_exception(lost)
            out = err = ""
        self._done()

    def _done(self) -> None:
        if self.on_done is not None:
            self.on_done(self)


class ExecChannel(_Collector):
    """One exec request per command: a new channel and a new remote shell each time."""

    def __init__(self) -> None:
        super().__init__()
        self.status: int | None = None
        self.signal: str | None = None
        self.eof = False

    def exit_status_received(self, status: int) -> None:
        self.status = status

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        self.signal = signal

    def eof_received(self) -> bool:
        self.eof = True
        self.poke()
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
    ) -> CommandResult:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        try:
            _chan, session = await conn.create_session(
                cls, remote_command(command, timeout=timeout), encoding=None
            )
        except (asyncssh.ChannelOpenError, asyncssh.ConnectionLost, OSError) as exc:
            raise ChannelLost(str(exc), started=False) from exc
        assert isinstance(session, ExecChannel)
        session.waiter = loop.create_future()
        if session.closed:
            session.waiter.set_result(None)
        try:
            async with asyncio.timeout(timeout + CLIENT_GRACE_S):
                await session.waiter
        except TimeoutError:
            session.close()
            duration = time.monotonic() - started
            return _timed_out(host, command, session.out, session.err, duration, abandoned=True)
        duration = time.monotonic() - started
        stdout = session.out.decode("utf-8", "replace")
        stderr = session.err.decode("utf-8", "replace")
        if session.status is None and session.signal is None:
            # closed without telling how the command ended: it may have run on
            raise ConnectionLost(
                host.name, "channel closed without an exit status", stdout=stdout, stderr=stderr
            )
        if is_remote_timeout(session.status, duration, timeout):
            return _timed_out(host, command, stdout, stderr, duration)
        return CommandResult(host.name, command, session.status, stdout, stderr, duration)


def _timed_out(
    host: Host,
    command: str,
    out: bytes | bytearray | str,
    err: bytes | bytearray | str,
    duration: float,
    *,
    abandoned: bool = False,
) -> CommandResult:
    """A timed-out result; ``abandoned`` when the client gave up before any exit status."""
    stdout = out.decode("utf-8", "replace") if isinstance(out, bytes | bytearray) else out
    stderr = err.decode("utf-8", "replace") if isinstance(err, bytes | bytearray) else err
    return CommandResult(
        host.name, command, None, stdout, stderr, duration, timed_out=True, abandoned=abandoned
    )
