"""SSH channels that run commands: a long-lived shell (the default) and one-shot exec.

Both are thin :class:`asyncssh.SSHClientSession` subclasses working on bytes: asyncssh's
``SSHClientProcess`` stream readers cost noticeably more client CPU per command, and the
engine's budget is a fraction of a millisecond per check.

:class:`ShellChannel` keeps one ``/bin/sh`` per channel and feeds it one command at a
time, each framed by a random per-channel token::

    timeout -k 1 T /bin/sh -c '<command>' </dev/null; printf '\\n%s:%d\\n' TOKEN $?; \\
        printf '\\n%s\\n' TOKEN >&2

The command reads ``/dev/null``, so it cannot swallow the next frame, and runs in its own
``sh -c``, so ``exit`` or ``cd`` in it do not affect the shell.

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

import asyncssh

from agentless.inventory import Host
from agentless.result import CommandResult
from agentless.transport import KILL_AFTER_S, is_remote_timeout, remote_command

log = logging.getLogger(__name__)

#: Client-side backstop beyond the remote ``timeout``: KILL delay plus network slack.
CLIENT_GRACE_S = KILL_AFTER_S + 2.0


_CORK: int | None = getattr(socket, "TCP_CORK", None)


@functools.lru_cache(maxsize=1024)
def _frame(command: str, timeout: float, token: bytes) -> bytes:
    """The bytes written to the shell for one command (probes repeat: cached)."""
    mark = token.decode()
    return (
        f"{remote_command(command, timeout=timeout)}; "
        f"printf '\\n%s:%d\\n' {mark} $?; printf '\\n%s\\n' {mark} >&2\n"
    ).encode()


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
    """A long-lived ``/bin/sh`` on one channel, running one framed command at a time."""

    def __init__(self) -> None:
        super().__init__()
        self.token = b"OPSMAP-" + secrets.token_hex(12).encode()
        self._out_marker = b"\n" + self.token + b":"
        self._err_marker = b"\n" + self.token + b"\n"
        self._status: int | None = None
        self._out_end = -1
        self._sock: socket.socket | None = None

    @classmethod
    async def open(cls, conn: asyncssh.SSHClientConnection) -> ShellChannel:
        _chan, session = await conn.create_session(cls, "exec /bin/sh", encoding=None)
        assert isinstance(session, ShellChannel)
        session._sock = conn.get_extra_info("socket") if _CORK is not None else None
        return session

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

    def finished(self) -> bool:
        if self._out_end < 0:
            at = self.out.find(self._out_marker)
            if at < 0:
                return False
            newline = self.out.find(b"\n", at + len(self._out_marker))
            if newline < 0:
                return False
            self._status = int(self.out[at + len(self._out_marker) : newline])
            self._out_end = at
        return self.err.find(self._err_marker) >= 0

    async def run(self, host: Host, command: str, *, timeout: float) -> CommandResult:  # noqa: ASYNC109 (seam)
        """Run one command; on a client-side timeout the channel is closed for good."""
        if self.closed or self.chan is None:
            raise ChannelLost("shell channel is closed", started=False)
        self.out.clear()
        self.err.clear()
        self._out_end = -1
        self._status = None
        frame = _frame(command, timeout, self.token)
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        started = time.monotonic()
        self._write(frame)
        try:
            async with asyncio.timeout(timeout + CLIENT_GRACE_S):
                await self.waiter
        except TimeoutError:
            log.warning(
                "no reply %gs after timeout on %s; closing shell", CLIENT_GRACE_S, host.name
            )
            self.close()
            return _timed_out(host, command, self.out, self.err, time.monotonic() - started)
        finally:
            self.waiter = None
        duration = time.monotonic() - started
        end_err = self.err.find(self._err_marker)
        stdout = self.out[: self._out_end].decode("utf-8", "replace")
        stderr = self.err[:end_err].decode("utf-8", "replace")
        if is_remote_timeout(self._status, duration, timeout):
            return _timed_out(host, command, stdout, stderr, duration)
        return CommandResult(host.name, command, self._status, stdout, stderr, duration)


class ExecChannel(_Collector):
    """One exec request per command: a new channel and a new remote shell each time."""

    def __init__(self) -> None:
        super().__init__()
        self.status: int | None = None
        self.eof = False

    def exit_status_received(self, status: int) -> None:
        self.status = status

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
            return _timed_out(host, command, session.out, session.err, time.monotonic() - started)
        duration = time.monotonic() - started
        stdout = session.out.decode("utf-8", "replace")
        stderr = session.err.decode("utf-8", "replace")
        if is_remote_timeout(session.status, duration, timeout):
            return _timed_out(host, command, stdout, stderr, duration)
        return CommandResult(host.name, command, session.status, stdout, stderr, duration)


def _timed_out(
    host: Host,
    command: str,
    out: bytes | bytearray | str,
    err: bytes | bytearray | str,
    duration: float,
) -> CommandResult:
    stdout = out.decode("utf-8", "replace") if isinstance(out, bytes | bytearray) else out
    stderr = err.decode("utf-8", "replace") if isinstance(err, bytes | bytearray) else err
    return CommandResult(host.name, command, None, stdout, stderr, duration, timed_out=True)
