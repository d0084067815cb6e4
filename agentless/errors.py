"""The engine's exceptions. Library errors (asyncssh, OSError) are translated here, at the edge.

Every error says whether the command it concerns **may have started** on the host
(:attr:`AgentlessError.started`), as httpx's ``ConnectError`` (nothing sent) differs
from its ``ReadError`` (sent, no answer)::

    AgentlessError         started=True: an engine error, whether the command ran is unknown
    ├── HostUnreachable    started=False: connect refused or timed out, login failed, no
    │   │                  channel: the command was never sent
    │   └── HostKeyError   started=False: unknown or changed host key (never accepted)
    ├── ConnectionLost     started=True: the connection or channel dropped after the
    │                      command was sent; it may have run, partly or wholly
    └── CommandTimeout     a command outlived its timeout (carries the partial result)

A caller that must not do a thing twice (an action) reads ``started``: False means the
command certainly did not run; True means it may have, and only an exit status says how
it ended.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentless.result import CommandResult


class AgentlessError(Exception):
    """Base of every error this package raises."""

    #: Whether the command may have started on the host (False: it certainly did not).
    started: bool = True


class HostUnreachable(AgentlessError):
    """The host could not be reached: refused, timed out, login failed or host key rejected.

    The command was never sent (``started`` is False).
    """

    started = False

    def __init__(self, host: str, reason: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason
        #: Seconds before the transport will try this host again (None: at once).
        self.retry_after_s = retry_after_s


class HostKeyError(HostUnreachable):
    """The host presented a key that is unknown or differs from the pinned one."""


class ConnectionLost(AgentlessError):
    """The connection (or the command's channel) dropped after the command was sent.

    The command may have run, partly or to its end: no exit status came back. ``stdout``
    and ``stderr`` hold what it printed before the drop.
    """

    def __init__(
        self, host: str, reason: str, *, started: bool = True, stdout: str = "", stderr: str = ""
    ) -> None:
        super().__init__(f"{host}: connection lost: {reason}")
        self.host = host
        self.reason = reason
        self.started = started
        self.stdout = stdout
        self.stderr = stderr


class CommandTimeout(AgentlessError):
    """A command outlived its timeout; ``result`` holds what it printed until then."""

    def __init__(self, result: CommandResult) -> None:
        super().__init__(f"{result.host}: command timed out after {result.duration_s:.1f}s")
        self.result = result
