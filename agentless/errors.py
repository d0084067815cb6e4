"""The engine's exceptions. Library errors (asyncssh, OSError) are translated here, at the edge."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentless.result import CommandResult


class AgentlessError(Exception):
    """Base of every error this package raises."""


class HostUnreachable(AgentlessError):
    """The host could not be reached: refused, timed out, login failed or host key rejected."""

    def __init__(self, host: str, reason: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason
        #: Seconds before the transport will try this host again (None: at once).
        self.retry_after_s = retry_after_s


class HostKeyError(HostUnreachable):
    """The host presented a key that is unknown or differs from the pinned one."""


class CommandTimeout(AgentlessError):
    """A command outlived its timeout; ``result`` holds what it printed until then."""

    def __init__(self, result: CommandResult) -> None:
        super().__init__(f"{result.host}: command timed out after {result.duration_s:.1f}s")
        self.result = result
