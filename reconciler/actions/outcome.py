"""What an action did: per host, per whole-map step, and as JSON for audit records.

Raw output never leaves this module: a :class:`HostOutcome` keeps the sha256 of what the
command printed and a truncated excerpt (:func:`excerpt`), nothing more.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from agentless.result import CommandResult

#: Default size, in bytes, of the excerpt kept of a command's output.
DEFAULT_OUTPUT_LIMIT = 4096
STDERR_MARK = "\n--- stderr ---\n"
#: Output up to this many characters is masked whole, before the excerpt is cut.
MASK_FIRST_CHARS = 16384


def output_digest(stdout: str, stderr: str) -> str:
    """sha256 (hex) of stdout followed by stderr, both UTF-8."""
    return hashlib.sha256((stdout + stderr).encode("utf-8", "surrogateescape")).hexdigest()


def excerpt(stdout: str, stderr: str, *, limit: int = DEFAULT_OUTPUT_LIMIT) -> str:
    """stdout, then stderr after a ``--- stderr ---`` line, cut to ``limit`` bytes.

    A longer text keeps its first and last ``limit // 2`` bytes around a marker that says
    how many bytes were left out; a character cut in two is dropped.
    """
    text = stdout + (STDERR_MARK + stderr if stderr else "")
    data = text.encode("utf-8", "surrogateescape")
    if len(data) <= limit:
        return text
    half = max(limit // 2, 0)
    head = data[:half].decode("utf-8", "ignore")
    tail = data[len(data) - half :].decode("utf-8", "ignore") if half else ""
    return f"{head}\n…[{len(data) - 2 * half} bytes omitted]…\n{tail}"


@dataclass(frozen=True, slots=True)
class CompletionOutcome:
    """How the completion check of an async action ended on one host."""

    passed: bool
    state: str
    """The state name (OK, CRITICAL, UNKNOWN…) of the last check that ran."""
    message: str
    attempts: int
    waited_s: float

    def to_json(self) -> dict[str, object]:
        return {
            "passed": self.passed,
            "state": self.state,
            "message": self.message,
            "attempts": self.attempts,
            "waited_s": round(self.waited_s, 3),
        }


@dataclass(frozen=True, slots=True)
class HostOutcome:
    """What one action did on one host."""

    host: str
    exit_status: int | None
    timed_out: bool
    duration_s: float
    output_sha256: str | None
    """None when the command did not run (host unreachable)."""
    output_excerpt: str
    unreachable: str | None = None
    """Why the host could not be reached; None when it was."""
    error: str | None = None
    """Any other reason the command has no result (an engine error)."""
    completion: CompletionOutcome | None = None
    """The completion check's outcome; None when there is none or the command failed."""

    @classmethod
    def from_result(
        cls,
        result: CommandResult,
        *,
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
        completion: CompletionOutcome | None = None,
        mask: Callable[[str], str] | None = None,
    ) -> HostOutcome:
        """``mask`` (the ``mask:`` patterns) hides its matches in the excerpt.

        Output short enough is masked before it is cut (no secret cut in two escapes
        its pattern), longer output after.
        """
        stdout, stderr = result.stdout, result.stderr
        if mask is not None and len(stdout) + len(stderr) <= MASK_FIRST_CHARS:
            stdout, stderr = mask(stdout), mask(stderr)
        cut = excerpt(stdout, stderr, limit=output_limit)
        return cls(
            host=str(result.host),
            exit_status=result.exit_status,
            timed_out=result.timed_out,
            duration_s=result.duration_s,
            output_sha256=output_digest(result.stdout, result.stderr),
            output_excerpt=mask(cut) if mask is not None else cut,
            completion=completion,
        )

    @property
    def command_ok(self) -> bool:
        """The command ran, exited 0, and did not time out."""
        return (
            self.unreachable is None
            and self.error is None
            and not self.timed_out
            and self.exit_status == 0
        )

    @property
    def succeeded(self) -> bool:
        """The command succeeded and so did its completion check, if any."""
        return self.command_ok and (self.completion is None or self.completion.passed)

    @property
    def reason(self) -> str | None:
        """Why this host failed, in a few words; None when it succeeded."""
        if self.unreachable is not None:
            return f"host unreachable: {self.unreachable}"
        if self.error is not None:
            return self.error
        if self.timed_out:
            return f"timed out after {self.duration_s:.1f}s"
        if self.exit_status != 0:
            return f"exit status {self.exit_status}"
        if self.completion is not None and not self.completion.passed:
            return f"completion check failed: {self.completion.message}"
        return None

    def to_json(self) -> dict[str, object]:
        return {
            "host": self.host,
            "succeeded": self.succeeded,
            "exit_status": self.exit_status,
            "timed_out": self.timed_out,
            "duration_s": round(self.duration_s, 3),
            "output_sha256": self.output_sha256,
            "output_excerpt": self.output_excerpt,
            "unreachable": self.unreachable,
            "error": self.error,
            "completion": self.completion.to_json() if self.completion else None,
            "reason": self.reason,
        }


class StepStatus(enum.Enum):
    """What became of one component's action in a whole-map run."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    """The component has no such action, or no host to run it on."""
    NOT_RUN = "not_run"
    """An earlier step failed, so this one was not tried."""


@dataclass(frozen=True, slots=True)
class Step:
    """One component's action within a whole-map run."""

    component: str
    action: str
    status: StepStatus
    reason: str | None = None
    outcome: ActionOutcome | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "component": self.component,
            "action": self.action,
            "status": self.status.value,
            "reason": self.reason,
            "outcome": self.outcome.to_json() if self.outcome else None,
        }


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """What one action did on its hosts, or (``component == "*"``) what a whole-map run did.

    A single action has ``hosts`` and no ``steps``; a whole-map run has ``steps`` (one per
    component and verb, in the order they were taken or would have been) and no ``hosts``.
    """

    map: str
    component: str
    action: str
    hosts: tuple[HostOutcome, ...] = ()
    steps: tuple[Step, ...] = ()
    error: str | None = None
    """Why the whole action failed before or apart from any host (e.g. no hosts)."""
    duration_s: float = 0.0

    @property
    def succeeded(self) -> bool:
        if self.error is not None:
            return False
        if self.steps:
            return all(s.status in (StepStatus.SUCCEEDED, StepStatus.SKIPPED) for s in self.steps)
        return bool(self.hosts) and all(h.succeeded for h in self.hosts)

    @property
    def reason(self) -> str | None:
        """The first reason for failure, for a one-line summary; None on success."""
        if self.succeeded:
            return None
        if self.error is not None:
            return self.error
        for step in self.steps:
            if step.status is StepStatus.FAILED:
                return f"{step.component}/{step.action}: {step.reason}"
        for host in self.hosts:
            if not host.succeeded:
                return f"{host.host}: {host.reason}"
        return "failed"

    def to_json(self) -> dict[str, object]:
        """The audit record's details: no raw output, only digests and excerpts."""
        data: dict[str, object] = {
            "map": self.map,
            "component": self.component,
            "action": self.action,
            "succeeded": self.succeeded,
            "reason": self.reason,
            "duration_s": round(self.duration_s, 3),
        }
        if self.error is not None:
            data["error"] = self.error
        if self.steps:
            data["steps"] = [step.to_json() for step in self.steps]
        else:
            data["hosts"] = [host.to_json() for host in self.hosts]
            data["exit_codes"] = {h.host: h.exit_status for h in self.hosts}
        return data
