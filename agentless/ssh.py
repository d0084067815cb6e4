"""SshTransport: the asyncssh implementation of :class:`~agentless.transport.Transport`.

**One connection per host**, opened on first use and kept open; every command of that
host goes through it. Commands run on **long-lived shell channels** (``mode="shell"``, the
default): each host keeps a small pool of ``/bin/sh`` channels, and a command is written
to an idle one and framed by a random token (see :mod:`agentless._sshchannel`).
``mode="exec"`` opens one exec channel per command instead.

Why shells: measured with ``benchmarks/checks_bench.py --mode both`` on the 2-core
machine, 50 local sshd, 5 probes per host (250 commands per warm cycle):

=====  ==============  =====================
mode   cycle (median)  client CPU per check
=====  ==============  =====================
shell  524-747 ms      0.27-0.28 ms
exec   740-979 ms      0.36-0.45 ms
=====  ==============  =====================

(10 hosts: 0.30 vs 0.75 ms CPU per check.) An exec channel costs a channel open and
confirm round trip, an exec request, exit-status/EOF/close messages and, on the server,
a new session process and login shell per command; a shell channel costs one data
message each way. The cycle is bound by the server side (50 sshd and every probe's
processes share 2 cores), which shells also spare. Exec remains available (``mode=
"exec"``) for servers that forbid long-lived sessions.

Limits: at most ``per_host_limit`` commands (hence channels) at once per host, default 4,
under OpenSSH's default ``MaxSessions 10`` (fewer shells measured faster on the shared
benchmark machine, where each is one more process for every /proc probe to read); at
most ``max_inflight`` commands overall and ``max_connecting`` handshakes at once
(handshakes are the CPU-heavy part of a cold run).

Timeouts: ``host.connect_timeout_s`` bounds the TCP connect, ``host.login_timeout_s`` the
handshake and authentication (and a channel open), the ``timeout`` of :meth:`run` the
command: the target kills it (and its process group) with coreutils ``timeout``; the
client gives up a little later as a backstop and closes the channel.

Reconnects: a connection that drops is reopened on next use. A failed connect puts the
host in backoff (:class:`~agentless.backoff.Backoff`, exponential with jitter): until the
gate opens, :meth:`run` raises :class:`~agentless.errors.HostUnreachable` at once with the
last reason and ``retry_after_s``, so a dead host costs one connect attempt, not one per
check. Callers queued behind one attempt share its outcome.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import asyncssh

from agentless._sshchannel import ChannelLost, ExecChannel, ShellChannel
from agentless._sshconnect import SshSettings, connect
from agentless.backoff import Backoff, Clock, ReconnectGate
from agentless.errors import HostUnreachable
from agentless.inventory import DEFAULT_SSH_PORT, Host
from agentless.result import CommandResult, HostName

__all__ = ["Mode", "SshSettings", "SshTransport"]

log = logging.getLogger(__name__)

Mode = Literal["shell", "exec"]
_PoolKey = tuple[str, str, int, str | None, str | None, str | None, str | None, str | None]
_MAX_JUMPS = 4
_CLOSE_TIMEOUT_S = 5.0


def _key(host: Host) -> _PoolKey:
    """Hosts that differ in how they are reached or trusted never share a connection."""
    return (
        host.name,
        host.address,
        host.port,
        host.user,
        host.jump_host,
        host.host_key,
        host.known_hosts,
        host.identity_file,
    )


@dataclass(eq=False, slots=True)
class _HostPool:
    """One host's connection, its idle shells, its slots and its reconnect gate."""

    host: Host
    gate: ReconnectGate
    slots: asyncio.Semaphore
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    conn: asyncssh.SSHClientConnection | None = None
    idle: list[ShellChannel] = field(default_factory=list)
    connects: int = 0

    def drop(self, conn: asyncssh.SSHClientConnection | None) -> None:
        """Forget ``conn`` (if still current) and its shells; close it."""
        if conn is None or conn is not self.conn:
            return
        self.conn = None
        for shell in self.idle:
            shell.close()
        self.idle.clear()
        conn.close()


class _Client(asyncssh.SSHClient):
    """Tells the pool when its connection goes away, so the next use reconnects."""

    def __init__(self, pool: _HostPool) -> None:
        self._pool = pool
        self._conn: asyncssh.SSHClientConnection | None = None

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        self._conn = conn

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None and self._conn is self._pool.conn:
            log.info("connection to %s lost: %s", self._pool.host.name, exc or "closed")
            self._pool.drop(self._conn)


class SshTransport:
    """Runs commands over SSH; see the module docstring. Use one per process and reuse it."""

    def __init__(
        self,
        settings: SshSettings | None = None,
        *,
        hosts: Mapping[str, Host] | None = None,
        mode: Mode = "shell",
        per_host_limit: int = 4,
        max_inflight: int = 256,
        max_connecting: int = 32,
        backoff: Backoff | None = None,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if not 1 <= per_host_limit <= 9:
            raise ValueError("per_host_limit must be 1-9 (OpenSSH's MaxSessions is 10)")
        self._settings = settings or SshSettings()
        self._hosts = dict(hosts or {})
        self._mode: Mode = mode
        self._per_host = per_host_limit
        self._inflight = asyncio.Semaphore(max_inflight)
        self._connecting = asyncio.Semaphore(max_connecting)
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._rng = rng or random.Random()
        self._pools: dict[_PoolKey, _HostPool] = {}

    # -- public API -------------------------------------------------------------------

    async def run(self, host: Host, command: str, *, timeout: float) -> CommandResult:  # noqa: ASYNC109 (seam)
        pool = self._pool(host)
        # Taken before waiting for a slot: an attempt that fails meanwhile is shared.
        generation = pool.gate.generation
        async with pool.slots, self._inflight:
            for attempt in (0, 1):
                conn = await self._connection(pool, generation)
                try:
                    if self._mode == "exec":
                        return await ExecChannel.run(conn, host, command, timeout=timeout)
                    shell = pool.idle.pop() if pool.idle else await self._open_shell(pool, conn)
                    result = await shell.run(host, command, timeout=timeout)
                except ChannelLost as exc:
                    pool.drop(conn)
                    if exc.started or attempt:
                        raise HostUnreachable(host.name, f"connection lost: {exc}") from exc
                    log.info("reconnecting to %s: %s", host.name, exc)
                    continue
                if not shell.closed:
                    pool.idle.append(shell)
                return result
        raise AssertionError("unreachable: the loop returns or raises")

    def is_connected(self, host: Host) -> bool:
        pool = self._pools.get(_key(host))
        return pool is not None and pool.conn is not None

    def connections_opened(self, host: Host) -> int:
        """How many times a connection to ``host`` was established (1 = never reconnected)."""
        pool = self._pools.get(_key(host))
        return pool.connects if pool is not None else 0

    async def aclose(self) -> None:
        conns = [pool.conn for pool in self._pools.values() if pool.conn is not None]
        for pool in self._pools.values():
            pool.drop(pool.conn)
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT_S), asyncio.TaskGroup() as tg:
                for conn in conns:
                    tg.create_task(conn.wait_closed())
        except TimeoutError:
            log.warning("connections still closing after %gs", _CLOSE_TIMEOUT_S)

    # -- internals ----------------------------------------------------------------------

    def _pool(self, host: Host) -> _HostPool:
        key = _key(host)
        pool = self._pools.get(key)
        if pool is None:
            gate = ReconnectGate(host.name, self._backoff, self._clock, self._rng)
            pool = _HostPool(host, gate, asyncio.Semaphore(self._per_host))
            self._pools[key] = pool
        return pool

    async def _open_shell(
        self, pool: _HostPool, conn: asyncssh.SSHClientConnection
    ) -> ShellChannel:
        try:
            async with asyncio.timeout(pool.host.login_timeout_s):
                return await ShellChannel.open(conn)
        except TimeoutError as exc:
            raise ChannelLost("opening a shell channel timed out", started=False) from exc
        except (asyncssh.Error, OSError) as exc:
            raise ChannelLost(f"opening a shell channel failed: {exc}", started=False) from exc

    async def _connection(
        self, pool: _HostPool, generation: int, depth: int = 0
    ) -> asyncssh.SSHClientConnection:
        """The pool's connection, opened if needed; an attempt finished since ``generation``
        that failed is shared rather than repeated."""
        if pool.conn is not None:
            return pool.conn
        async with pool.lock:
            if pool.conn is not None:
                return pool.conn
            gate = pool.gate
            if gate.generation != generation and gate.last_reason is not None:
                raise HostUnreachable(pool.host.name, gate.last_reason)
            gate.check()
            try:
                tunnel = await self._tunnel(pool.host, depth)
                async with self._connecting:
                    conn = await connect(
                        pool.host,
                        self._settings,
                        tunnel=tunnel,
                        client_factory=lambda: _Client(pool),
                    )
            except HostUnreachable as exc:
                exc.retry_after_s = gate.failed(exc.reason)
                log.warning(
                    "cannot reach %s: %s (retry in %.1fs)",
                    pool.host.name,
                    exc.reason,
                    exc.retry_after_s,
                )
                raise
            gate.succeeded()
            pool.conn = conn
            pool.connects += 1
            log.debug("connected to %s (%d connects so far)", pool.host.name, pool.connects)
            return conn

    async def _tunnel(self, host: Host, depth: int) -> asyncssh.SSHClientConnection | None:
        if not host.jump_host:
            return None
        if depth >= _MAX_JUMPS:
            raise HostUnreachable(host.name, f"more than {_MAX_JUMPS} chained jump hosts")
        jump = self._jump_host(host)
        try:
            jump_pool = self._pool(jump)
            return await self._connection(jump_pool, jump_pool.gate.generation, depth + 1)
        except HostUnreachable as exc:
            raise HostUnreachable(host.name, f"via jump host {jump.name}: {exc.reason}") from exc

    def _jump_host(self, host: Host) -> Host:
        """The jump host as an inventory host, or one built from ``[user@]host[:port]``."""
        spec = host.jump_host or ""
        if spec in self._hosts:
            return self._hosts[spec]
        user, _, rest = spec.rpartition("@")
        address, _, port = rest.partition(":")
        return Host(
            name=HostName(f"jump:{spec}"),
            address=address,
            port=int(port) if port else DEFAULT_SSH_PORT,
            user=user or host.user,
            identity_file=host.identity_file,
            known_hosts=host.known_hosts,
            connect_timeout_s=host.connect_timeout_s,
            login_timeout_s=host.login_timeout_s,
        )
