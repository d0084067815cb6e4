"""A :class:`~agentless.transport.Transport` for tests: answers come from a handler.

Like httpx's ``MockTransport``, :class:`FakeTransport` sits at the transport seam and
nowhere else: the code under test runs unchanged, and only what a host would answer is
scripted. The handler is called as ``handler(host, command, timeout)`` and returns a
:class:`~agentless.result.CommandResult` (or an awaitable of one, for a handler that
waits on something), or raises an :class:`~agentless.errors.AgentlessError` as a real
transport would (``HostUnreachable`` for a host never reached, ``ConnectionLost`` for
one that dropped). A handler may also delegate to a real transport to record what is
sent to it::

    def forward(host, command, timeout):
        return ssh.run(host, command, timeout=timeout)

    transport = FakeTransport(forward)

Every call is kept in :attr:`FakeTransport.calls` as ``(host name, command, timeout)``,
in the order the calls were made; :attr:`FakeTransport.max_running` is the most calls in
flight at once per host (for tests of concurrency bounds).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from agentless.inventory import Host
from agentless.result import CommandResult

Handler = Callable[[Host, str, float], "CommandResult | Awaitable[CommandResult]"]
"""What answers a :class:`FakeTransport`'s commands: ``(host, command, timeout)``."""


def reply(
    host: Host,
    command: str,
    *,
    exit_status: int | None = 0,
    stdout: str = "",
    stderr: str = "",
    timed_out: bool = False,
    duration_s: float = 0.01,
) -> CommandResult:
    """The result of ``command`` on ``host`` (a timed-out one has no exit status)."""
    return CommandResult(
        host=host.name,
        command=command,
        exit_status=None if timed_out else exit_status,
        stdout=stdout,
        stderr=stderr,
        duration_s=duration_s,
        timed_out=timed_out,
    )


def succeed(host: Host, command: str, timeout: float) -> CommandResult:
    """A handler under which every command exits 0 and prints nothing."""
    return reply(host, command)


class FakeTransport:
    """A Transport whose answers ``handler`` gives; see the module docstring."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.calls: list[tuple[str, str, float]] = []
        self.running: dict[str, int] = {}
        self.max_running: dict[str, int] = {}
        self.closed = False
        self.connections = 0
        """What the fake reports as open connections (a test sets it)."""

    async def run(self, host: Host, command: str, *, timeout: float) -> CommandResult:  # noqa: ASYNC109 (seam)
        """Record the call and return what the handler answers (or raise what it raises).

        Like a real transport, every call yields to the event loop at least once.
        """
        name = str(host.name)
        self.calls.append((name, command, timeout))
        self.running[name] = self.running.get(name, 0) + 1
        self.max_running[name] = max(self.max_running.get(name, 0), self.running[name])
        try:
            await asyncio.sleep(0)
            answer = self.handler(host, command, timeout)
            if inspect.isawaitable(answer):
                return await answer
            return answer
        finally:
            self.running[name] -= 1

    async def aclose(self) -> None:
        """Mark the transport closed (:attr:`closed`); there is nothing to release."""
        self.closed = True

    def commands(self, host_name: str | None = None) -> list[str]:
        """The commands sent, in order: to every host, or to ``host_name`` only."""
        return [c for h, c, _ in self.calls if host_name is None or h == host_name]
