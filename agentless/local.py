"""LocalTransport: run commands with ``/bin/sh -c`` on this machine, no SSH.

For the demo's ``localhost`` host and for tests. Each command starts in a new session
(its own process group); on timeout the whole group is killed with SIGKILL, and the
partial output read until then is returned with ``timed_out=True`` (see
:mod:`agentless.transport` for the contract). Each pipe is read 64 KiB at a time into
an :class:`~agentless.output.OutputSink`: at most ``max_output`` bytes kept per stream,
the rest counted and dropped as it arrives (asyncio's pipe reader stops reading the
pipe while its own buffer holds 128 KiB, so a flood waits in the child, not here). A
command gets the environment of :func:`agentless.childenv.child_environment`: an
allow-list, never OpsMap's secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time

from agentless._inert import for_log
from agentless.childenv import child_environment
from agentless.inventory import Host
from agentless.output import DEFAULT_MAX_OUTPUT, OutputSink, check_max_output
from agentless.result import CommandResult

log = logging.getLogger(__name__)

#: How long to wait for pipes to close after the process group was killed.
_DRAIN_AFTER_KILL_S = 2.0


#: Most bytes taken from a pipe's reader at once.
_CHUNK = 65536


async def _pump(stream: asyncio.StreamReader | None, sink: OutputSink) -> None:
    if stream is None:
        return
    while chunk := await stream.read(_CHUNK):
        sink.feed(chunk)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


class LocalTransport:
    """A :class:`~agentless.transport.Transport` for ``transport: local`` hosts."""

    def __init__(self, *, max_concurrency: int = 16, max_output: int = DEFAULT_MAX_OUTPUT) -> None:
        self._slots = asyncio.Semaphore(max_concurrency)
        self._max_output = check_max_output(max_output)

    async def run(self, host: Host, command: str, *, timeout: float) -> CommandResult:  # noqa: ASYNC109 (seam)
        async with self._slots:
            return await self._run(host, command, timeout=timeout)

    async def _run(self, host: Host, command: str, *, timeout: float) -> CommandResult:  # noqa: ASYNC109 (seam)
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            env=child_environment(),
        )
        out, err = OutputSink(self._max_output), OutputSink(self._max_output)
        timed_out = False
        try:
            async with asyncio.timeout(timeout):
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(_pump(proc.stdout, out))
                    tg.create_task(_pump(proc.stderr, err))
                    tg.create_task(proc.wait())
        except TimeoutError:
            timed_out = True
            log.info(
                "command timed out after %gs on %s; killing its process group",
                timeout,
                for_log(host.name),
            )
            _kill_group(proc.pid)
            await self._drain(proc, out, err)
        finally:
            if proc.returncode is None:
                _kill_group(proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        status = None if timed_out else proc.returncode
        duration = time.monotonic() - started
        return CommandResult.of(host.name, command, status, out, err, duration, timed_out=timed_out)

    async def _drain(
        self, proc: asyncio.subprocess.Process, out: OutputSink, err: OutputSink
    ) -> None:
        """Collect what is left in the pipes once the group is dead (bounded in time)."""
        try:
            async with asyncio.timeout(_DRAIN_AFTER_KILL_S):
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(_pump(proc.stdout, out))
                    tg.create_task(_pump(proc.stderr, err))
                    tg.create_task(proc.wait())
        except TimeoutError:
            log.warning("pipes still open %gs after killing pid %d", _DRAIN_AFTER_KILL_S, proc.pid)

    @property
    def connections(self) -> int:
        """Always 0: a command is a child process, nothing stays open between commands."""
        return 0

    async def aclose(self) -> None:
        """Nothing is kept open between commands."""
