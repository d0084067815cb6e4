"""Frozen result types shared by transports and probes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NewType

if TYPE_CHECKING:
    from agentless.output import OutputSink

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
    streams: tuple[OutputSink, OutputSink] | None = field(default=None, repr=False, compare=False)
    """The sinks stdout and stderr were read into, which know how much the host sent,
    how much was dropped past the cap and the digests (taken only when asked); None for a
    result built from text, whose ``stdout`` and ``stderr`` are then the whole streams.
    One field, not one per figure: a frozen dataclass pays for each field it sets, on
    every check."""

    @classmethod
    def of(
        cls,
        host: HostName,
        command: str,
        exit_status: int | None,
        out: OutputSink,
        err: OutputSink,
        duration_s: float,
        *,
        timed_out: bool = False,
        abandoned: bool = False,
    ) -> CommandResult:
        """The result of a command whose streams were read into ``out`` and ``err``."""
        # below the cap (every check but a flood), decoded here: one call fewer each
        stdout = out.kept.decode("utf-8", "replace") if out.total == len(out.kept) else out.text()
        stderr = err.kept.decode("utf-8", "replace") if err.total == len(err.kept) else err.text()
        return cls(
            host, command, exit_status, stdout, stderr, duration_s, timed_out, abandoned, (out, err)
        )

    @property
    def output_cap(self) -> int | None:
        """The cap in force per stream (None: the whole output is here)."""
        return self.streams[0].cap if self.streams is not None else None

    @property
    def stdout_dropped(self) -> int:
        """Bytes of stdout the host sent past the cap: counted, never kept
        (:mod:`agentless.output`); ``stdout`` holds the first ``output_cap`` bytes."""
        return self.streams[0].dropped if self.streams is not None else 0

    @property
    def stderr_dropped(self) -> int:
        """The same for stderr."""
        return self.streams[1].dropped if self.streams is not None else 0

    @property
    def stdout_sha256(self) -> str | None:
        """sha256 (hex) of every byte of stdout the host sent, kept or not; None for a
        result built from text."""
        return self.streams[0].sha256() if self.streams is not None else None

    @property
    def stderr_sha256(self) -> str | None:
        """The same for stderr."""
        return self.streams[1].sha256() if self.streams is not None else None

    @property
    def stdout_bytes(self) -> int:
        """How many bytes of stdout the host sent, kept or not."""
        if self.streams is not None:
            return self.streams[0].total
        return len(self.stdout.encode("utf-8", "surrogateescape"))

    @property
    def stderr_bytes(self) -> int:
        """The same for stderr."""
        if self.streams is not None:
            return self.streams[1].total
        return len(self.stderr.encode("utf-8", "surrogateescape"))

    @property
    def truncated(self) -> bool:
        """The host sent more than the cap on either stream: the rest was dropped."""
        return bool(self.stdout_dropped or self.stderr_dropped)

    @property
    def over_cap(self) -> str | None:
        """``output over N bytes (…)`` when :attr:`truncated`, else None."""
        if not self.truncated:
            return None
        cap = self.output_cap or 0
        sizes = [
            f"{name} {size} bytes"
            for name, size, dropped in (
                ("stdout", self.stdout_bytes, self.stdout_dropped),
                ("stderr", self.stderr_bytes, self.stderr_dropped),
            )
            if dropped
        ]
        return f"output over {cap} bytes ({', '.join(sizes)}; the rest was dropped)"

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
