"""Frozen result types shared by transports and probes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NewType

HostName = NewType("HostName", str)


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What one command did on one host (like asyncssh's ``SSHCompletedProcess``)."""

    host: HostName
    command: str
    exit_status: int | None
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    abandoned: bool = False
    """With ``timed_out``: the client stopped waiting and closed the channel before any
    exit status came back, so how the command ended is not known (its remote ``timeout``
    should still end it). False when its end was seen: the remote ``timeout``'s own exit
    status, or a local kill."""

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.timed_out


class CheckState(enum.Enum):
    """Nagios-style states, in increasing order of badness (UNKNOWN sorts last)."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @classmethod
    def from_exit_code(cls, code: int | None) -> CheckState:
        """Nagios plugin convention: 0/1/2/3, anything else is UNKNOWN."""
        if code is None:
            return cls.UNKNOWN
        return {0: cls.OK, 1: cls.WARNING, 2: cls.CRITICAL}.get(code, cls.UNKNOWN)


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """A parsed probe: its state, a one-line message, and the measured value if any."""

    state: CheckState
    message: str
    value: float | None = None
    details: dict[str, float] = field(default_factory=dict)
