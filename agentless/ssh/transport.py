"""SshTransport: the asyncssh implementation of :class:`~agentless.transport.Transport`.

**One connection per host**, opened on first use and kept open; every command of that
host goes through it. Commands run on **long-lived shell channels** (``mode="shell"``, the
default): each host keeps a small pool of ``/bin/sh`` channels, and commands are written
to an idle one and framed by a random token (see :mod:`agentless.ssh._channel`).
``mode="exec"`` opens one exec channel per command instead.

**Batches.** Commands for one host that arrive in the same event-loop tick (as a
``run_checks`` of many checks does, or several scheduled checks falling due together)
go out as one batch: one write, one frame, run one after the other by one shell, each
still under its own ``timeout``; every caller gets its own result as soon as its part of
the frame is back. A command that arrives while every shell of its host is busy opens
another (up to ``per_host_limit``), else joins the next batch. Builtin-only
(:class:`~agentless.transport.Inline`) commands go first in a batch. Measured with
``benchmarks/checks_bench.py`` (50 sshd, 5 checks per host): per host and cycle one
SSH data message each way instead of five, one shell instead of four, and about half
the cycle time; see the benchmark's docstring for the figures.

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

Limits: at most ``per_host_limit`` shells (or exec channels) at once per host, default
4, under OpenSSH's default ``MaxSessions 10``; at most ``max_inflight`` commands overall
(:class:`_Budget`, counted a batch at a time: a batch goes once the count is under the
bound, whole, so the bound may be passed by the rest of one batch; a command that waited
for a slot on its own would leave its batch-mates to go out alone, one frame each, just
when the machine is busiest) and ``max_connecting`` handshakes at once (handshakes are the
CPU-heavy part of a cold run; connect + one batch to 50 local sshd measured
1.66/1.35/1.20/1.06/0.98/1.10 s with 2/4/8/16/32/64, hence the default 32).

Output: each command's stdout and stderr are read as they arrive into sinks of
``max_output`` bytes each (default 64 KiB, :mod:`agentless.output`); the rest is counted,
hashed and dropped, never held (a shell's batch is split at its end marks packet by
packet, :mod:`agentless.ssh._frames`). asyncssh hands each data packet to the channel
and tops its window (2 MiB) up when half is used, so it holds no more than that either.

Timeouts: ``host.connect_timeout_s`` bounds the TCP connect, ``host.login_timeout_s`` the
handshake and authentication (and a channel open), the ``timeout`` of :meth:`run` the
command: the target kills it (and its process group) with coreutils ``timeout``; the
client gives up a little later as a backstop and closes the channel.

Reconnects: a connection that drops is reopened on next use. A command caught by the drop
fails with :class:`~agentless.errors.ConnectionLost` (it was sent, it may have run: never
retried here); one that could not be sent is retried once on a new connection, then fails
with :class:`~agentless.errors.HostUnreachable` (it never ran). A failed connect puts the
host in backoff (:class:`~agentless.backoff.Backoff`, exponential with jitter): until the
gate opens, :meth:`run` raises :class:`~agentless.errors.HostUnreachable` at once with the
last reason and ``retry_after_s``, so a dead host costs one connect attempt, not one per
check. Callers queued behind one attempt share its outcome.

Each host with work has at most one dispatcher task (connect, open a shell, write a
batch); it belongs to the transport, ends when no command waits, and :meth:`aclose`
cancels it. Callers only await their own command's future, so cancelling one caller
never cancels another's command.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncssh

from agentless._inert import for_log
from agentless.backoff import Backoff, Clock, ReconnectGate
from agentless.errors import AgentlessError, ConnectionLost, HostUnreachable
from agentless.inventory import DEFAULT_SSH_PORT, Host
from agentless.output import DEFAULT_MAX_OUTPUT, check_max_output
from agentless.result import CommandResult, HostName
from agentless.ssh._channel import ChannelLost, ExecChannel, Job, ShellChannel
from agentless.ssh._connect import SshSettings, connect
from agentless.transport import Inline

__all__ = ["Mode", "SshSettings", "SshTransport"]

log = logging.getLogger(__name__)

Mode = Literal["shell", "exec"]
_PoolKey = tuple[str, str, int, str | None, str | None, str | None, str | None, str | None]
_MAX_JUMPS = 4
_CLOSE_TIMEOUT_S = 5.0
#: Most commands in one frame: a batch runs in sequence, so keep it bounded.
_MAX_BATCH = 16


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
    busy: set[ShellChannel] = field(default_factory=set)
    pending: deque[Job] = field(default_factory=deque)
    dispatcher: asyncio.Task[None] | None = None
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

    def take_batch(self) -> list[Job]:
        """Up to ``_MAX_BATCH`` waiting jobs whose caller still waits, inline ones first."""
        batch: list[Job] = []
        while self.pending and len(batch) < _MAX_BATCH:
            job = self.pending.popleft()
            if not job.future.done():
                batch.append(job)
        batch.sort(key=lambda job: not isinstance(job.command, Inline))
        return batch

    def fail_pending(self, exc: BaseException) -> None:
        while self.pending:
            job = self.pending.popleft()
            if not job.future.done():
                job.future.set_exception(exc)


class _Budget:
    """How many commands may be in flight overall, taken a batch at a time.

    :meth:`room` waits until the count is under the limit; :meth:`take`
    counts a batch out, and each command gives its share back when its future is done
    (result, error or its caller's cancellation). Waiters are woken one at a time, in
    order, while room is left, so a thousand waiting hosts are not all woken per slot.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("max_inflight must be at least 1")
        self.limit = limit
        self.used = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def room(self) -> None:
        while self.used >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # it was woken: hand the turn on
                raise

    def take(self, futures: Sequence[asyncio.Future[Any]]) -> None:
        """Count one command per future out, until that future is done."""
        self.used += len(futures)
        for future in futures:
            future.add_done_callback(self._give)
        self._wake()

    def _give(self, _future: object) -> None:
        self.used -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.used < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class _Client(asyncssh.SSHClient):
    """Tells the pool when its connection goes away, so the next use reconnects."""

    def __init__(self, pool: _HostPool) -> None:
        self._pool = pool
        self._conn: asyncssh.SSHClientConnection | None = None

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        self._conn = conn

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None and self._conn is self._pool.conn:
            log.info(
                "connection to %s lost: %s",
                for_log(self._pool.host.name),
                for_log(exc or "closed"),
                extra={"host": self._pool.host.name},
            )
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
        max_output: int = DEFAULT_MAX_OUTPUT,
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
        self._inflight = _Budget(max_inflight)
        self._connecting = asyncio.Semaphore(max_connecting)
        self._max_output = check_max_output(max_output)
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._rng = rng or random.Random()
        self._pools: dict[_PoolKey, _HostPool] = {}

    # -- public API -------------------------------------------------------------------

    async def run(self, host: Host, command: str, *, timeout: float) -> CommandResult:  # noqa: ASYNC109 (seam)
        pool = self._pool(host)
        if self._mode == "exec":
            return await self._run_exec(pool, command, timeout)
        job = Job(command, timeout, asyncio.get_running_loop().create_future())
        pool.pending.append(job)
        self._kick(pool)
        return await job.future

    def is_connected(self, host: Host) -> bool:
        pool = self._pools.get(_key(host))
        return pool is not None and pool.conn is not None

    @property
    def connections(self) -> int:
        """Hosts with an open connection now (one connection per host)."""
        return sum(1 for pool in self._pools.values() if pool.conn is not None)

    def connections_opened(self, host: Host) -> int:
        """How many times a connection to ``host`` was established (1 = never reconnected)."""
        pool = self._pools.get(_key(host))
        return pool.connects if pool is not None else 0

    async def aclose(self) -> None:
        dispatchers = [p.dispatcher for p in self._pools.values() if p.dispatcher is not None]
        for task in dispatchers:
            task.cancel()
        for task in dispatchers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
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

    async def _run_exec(self, pool: _HostPool, command: str, timeout: float) -> CommandResult:  # noqa: ASYNC109
        """One exec channel per command; no batching."""
        generation = pool.gate.generation
        async with pool.slots:
            await self._inflight.room()
            done = asyncio.get_running_loop().create_future()
            self._inflight.take([done])
            try:
                return await self._exec_once(pool, generation, command, timeout)
            finally:
                done.set_result(None)

    async def _exec_once(
        self,
        pool: _HostPool,
        generation: int,
        command: str,
        timeout: float,  # noqa: ASYNC109
    ) -> CommandResult:
        """The exec channel's run, reconnecting once when the command was not sent."""
        for attempt in (0, 1):
            conn = await self._connection(pool, generation)
            try:
                return await ExecChannel.run(
                    conn, pool.host, command, timeout=timeout, max_output=self._max_output
                )
            except ChannelLost as exc:
                pool.drop(conn)
                if exc.started:
                    raise ConnectionLost(pool.host.name, str(exc)) from exc
                if attempt:
                    raise HostUnreachable(pool.host.name, f"connection lost: {exc}") from exc
                log.info(
                    "reconnecting to %s: %s",
                    for_log(pool.host.name),
                    for_log(exc),
                    extra={"host": pool.host.name},
                )
        raise AssertionError("unreachable: the loop returns or raises")

    def _kick(self, pool: _HostPool) -> None:
        """Make sure a dispatcher serves ``pool``'s waiting jobs (it starts next tick, so
        every command of this tick joins its first batch)."""
        if pool.dispatcher is None and pool.pending:
            loop = asyncio.get_running_loop()
            pool.dispatcher = loop.create_task(self._dispatch(pool))

    async def _dispatch(self, pool: _HostPool) -> None:
        """Send the waiting jobs in batches on free shells; return when none waits or
        every shell is busy (a shell that finishes kicks a new dispatcher)."""
        try:
            while pool.pending:
                shell = await self._free_shell(pool)
                if shell is None:
                    return
                await self._inflight.room()
                batch = pool.take_batch()
                if not batch:
                    pool.idle.append(shell)
                    return
                try:
                    shell.start(pool.host, batch)
                except ChannelLost:
                    pool.pending.extendleft(reversed(batch))
                    continue
                self._inflight.take([job.future for job in batch])
                pool.busy.add(shell)
        except asyncio.CancelledError:
            pool.fail_pending(HostUnreachable(pool.host.name, "transport closed"))
            raise
        except Exception as exc:  # a bug: every waiting caller sees it, none hangs
            log.exception(
                "dispatching commands to %s failed", pool.host.name, extra={"host": pool.host.name}
            )
            pool.fail_pending(AgentlessError(f"{pool.host.name}: internal error: {exc!r}"))
        finally:
            pool.dispatcher = None

    async def _free_shell(self, pool: _HostPool) -> ShellChannel | None:
        """An idle shell, else a new one if under the limit; None when none can be had
        (every shell busy, or the host unreachable: then the waiting jobs have failed)."""
        while pool.idle:
            shell = pool.idle.pop()
            if not shell.closed and shell.conn is pool.conn:
                return shell
        if len(pool.busy) >= self._per_host:
            return None
        for attempt in (0, 1):
            try:
                conn = await self._connection(pool, pool.gate.generation)
            except HostUnreachable as exc:
                pool.fail_pending(exc)
                return None
            try:
                shell = await self._open_shell(pool, conn)
            except ChannelLost as exc:
                pool.drop(conn)
                if attempt:
                    reason = f"connection lost: {exc}"
                    pool.fail_pending(HostUnreachable(pool.host.name, reason))
                    return None
                log.info(
                    "reconnecting to %s: %s",
                    for_log(pool.host.name),
                    for_log(exc),
                    extra={"host": pool.host.name},
                )
                continue
            shell.on_done = functools.partial(self._shell_done, pool)
            return shell
        raise AssertionError("unreachable: the loop returns")

    def _shell_done(self, pool: _HostPool, shell: ShellChannel) -> None:
        """A shell finished its batch (back to idle) or closed (forgotten)."""
        pool.busy.discard(shell)
        if not shell.closed and shell.conn is pool.conn and shell not in pool.idle:
            pool.idle.append(shell)
        self._kick(pool)

    async def _open_shell(
        self, pool: _HostPool, conn: asyncssh.SSHClientConnection
    ) -> ShellChannel:
        try:
            async with asyncio.timeout(pool.host.login_timeout_s):
                return await ShellChannel.open(conn, max_output=self._max_output)
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
                first = gate.failures == 0 or gate.last_reason != exc.reason
                exc.retry_after_s = gate.failed(exc.reason)
                log.log(
                    logging.WARNING if first else logging.DEBUG,  # once per reason, not per retry
                    "cannot reach %s: %s (retry in %.1fs)",
                    pool.host.name,
                    exc.reason,
                    exc.retry_after_s,
                )
                raise
            if gate.failures:
                log.warning("%s is reachable again", pool.host.name, extra={"host": pool.host.name})
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
