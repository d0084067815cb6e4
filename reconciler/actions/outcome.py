"""What an action did: per host, per whole-map step, and as JSON for audit records.

Raw output never leaves this module: a :class:`HostOutcome` keeps, per stream, the sha256
and the size of every byte the host sent (taken by the transport as the bytes arrived,
the kept ones and those past its cap alike, :mod:`agentless.output`) and a truncated
excerpt of what was kept (:func:`excerpt`), nothing more. When the host sent more than
the cap, the excerpt ends with a line that says so: its tail is the tail of what was
read, not of what the command printed.

**Results.** Each host's action ends ``succeeded``, ``failed`` or ``unknown``
(:data:`Result`):

- ``failed`` only when we know how it ended: the command never started (host
  unreachable, login or host key refused: reason ``not started: …``), it exited non-zero
  or was killed by its remote ``timeout`` (an exit status came back), or its completion
  check ran on the reachable host and did not pass in time;
- ``unknown`` when the command was sent and no exit status came back: the connection
  dropped, the client gave up waiting, an engine error, or the completion check could not
  reach the host. The command may have run, partly or wholly: never report it as failed.

An action on several hosts (and a whole-map run over its steps) is ``failed`` when any
host (step) failed, else ``unknown`` when any is unknown, else ``succeeded``.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from agentless.result import CommandResult

#: Default size, in bytes, of the excerpt kept of a command's output.
DEFAULT_OUTPUT_LIMIT = 4096
STDERR_MARK = "\n--- stderr ---\n"
#: Output up to this many characters is masked whole, before the excerpt is cut.
MASK_FIRST_CHARS = 16384

Result = Literal["succeeded", "failed", "unknown"]
"""How an action ended on a host, or overall; see the module docstring."""


def fold(results: list[Result]) -> Result:
    """Several hosts' (or steps') results as one: any failed, else any unknown, else ok."""
    if "failed" in results:
        return "failed"
    if "unknown" in results:
        return "unknown"
    return "succeeded"


def stream_digest(text: str) -> str:
    """sha256 (hex) of ``text`` as UTF-8: the digest of a stream a transport did not
    hash itself (a fake's result, whose text is the whole output)."""
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


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
    reachable: bool = True
    """Whether the host answered the last probe (False: it could not be observed)."""

    def to_json(self) -> dict[str, object]:
        return {
            "passed": self.passed,
            "reachable": self.reachable,
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
    stdout_sha256: str | None
    """sha256 of every byte of stdout the host sent, kept or not; None when the command
    has no result (host unreachable, connection lost…)."""
    stderr_sha256: str | None
    output_excerpt: str
    unreachable: str | None = None
    """Why the host could not be reached (the command never started); None when it was."""
    error: str | None = None
    """Any other reason the command has no result (an engine error, no answer in time):
    whether it ran is unknown."""
    lost: str | None = None
    """Why the connection dropped after the command was sent (it may have run)."""
    abandoned: bool = False
    """With ``timed_out``: the client gave up before any exit status came back."""
    completion: CompletionOutcome | None = None
    """The completion check's outcome; None when there is none or the command failed."""
    stdout_bytes: int = 0
    """How many bytes of stdout the host sent (the excerpt holds at most the cap's)."""
    stderr_bytes: int = 0
    output_truncated: bool = False
    """The host sent more than the transport's cap on a stream: the rest was dropped."""
    output_sha256: str | None = None
    """sha256 of stdout followed by stderr as read (what was kept, when over the cap): the
    audit field of earlier releases, kept beside the per-stream digests of every byte."""

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
        if mask is not None:
            cut = mask(cut)
        over = result.over_cap
        if over is not None:
            cut += f"\n--- {over} ---\n"
        return cls(
            host=str(result.host),
            exit_status=result.exit_status,
            timed_out=result.timed_out,
            abandoned=result.abandoned,
            duration_s=result.duration_s,
            stdout_sha256=result.stdout_sha256 or stream_digest(result.stdout),
            stderr_sha256=result.stderr_sha256 or stream_digest(result.stderr),
            output_excerpt=cut,
            completion=completion,
            stdout_bytes=result.stdout_bytes,
            stderr_bytes=result.stderr_bytes,
            output_truncated=result.truncated,
            output_sha256=stream_digest(result.stdout + result.stderr),
        )

    @property
    def command_ok(self) -> bool:
        """The command ran, exited 0, and did not time out."""
        return (
            self.unreachable is None
            and self.error is None
            and self.lost is None
            and not self.timed_out
            and self.exit_status == 0
        )

    @property
    def started(self) -> bool:
        """False only when the command certainly never started (host unreachable)."""
        return self.unreachable is None

    @property
    def result(self) -> Result:
        """succeeded, failed (an exit status or a never-started command says so) or
        unknown (it was sent, and how it ended is not known); see the module docstring."""
        if self.unreachable is not None:
            return "failed"
        if self.lost is not None or self.error is not None:
            return "unknown"
        if self.timed_out:
            return "unknown" if self.abandoned else "failed"
        if self.exit_status != 0:
            return "failed"
        if self.completion is not None and not self.completion.passed:
            return "failed" if self.completion.reachable else "unknown"
        return "succeeded"

    @property
    def succeeded(self) -> bool:
        """The command succeeded and so did its completion check, if any."""
        return self.result == "succeeded"

    @property
    def reason(self) -> str | None:
        """Why this host failed or is unknown, in a few words; None when it succeeded."""
        if self.unreachable is not None:
            return f"not started: host unreachable: {self.unreachable}"
        if self.lost is not None:
            return f"outcome unknown: connection lost after the command was sent: {self.lost}"
        if self.error is not None:
            return f"outcome unknown: {self.error}"
        if self.timed_out and self.abandoned:
            return f"outcome unknown: no exit status {self.duration_s:.1f}s after it was sent"
        if self.timed_out:
            return f"timed out after {self.duration_s:.1f}s"
        if self.exit_status != 0:
            return f"exit status {self.exit_status}"
        if self.completion is not None and not self.completion.passed:
            if not self.completion.reachable:
                return f"outcome unknown: completion check: {self.completion.message}"
            return f"completion check failed: {self.completion.message}"
        return None

    def to_json(self) -> dict[str, object]:
        return {
            "host": self.host,
            "result": self.result,
            "succeeded": self.succeeded,
            "started": self.started,
            "exit_status": self.exit_status,
            "timed_out": self.timed_out,
            "abandoned": self.abandoned,
            "duration_s": round(self.duration_s, 3),
            "stdout_sha256": self.stdout_sha256,
            "stderr_sha256": self.stderr_sha256,
            "stdout_bytes": self.stdout_bytes,
            "stderr_bytes": self.stderr_bytes,
            "output_truncated": self.output_truncated,
            "output_sha256": self.output_sha256,
            "output_excerpt": self.output_excerpt,
            "unreachable": self.unreachable,
            "lost": self.lost,
            "error": self.error,
            "completion": self.completion.to_json() if self.completion else None,
            "reason": self.reason,
        }


class StepStatus(enum.Enum):
    """What became of one component's action in a whole-map run."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"
    """The action was sent and how it ended on some host is not known."""
    SKIPPED = "skipped"
    """The component has no such action, or no host to run it on."""
    NOT_RUN = "not_run"
    """An earlier step failed or is unknown, so this one was not tried."""


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
    def result(self) -> Result:
        """failed if any host (step) failed, else unknown if any is, else succeeded."""
        if self.error is not None:
            return "failed"
        if self.steps:
            return fold([_STEP_RESULTS.get(s.status, "succeeded") for s in self.steps])
        return fold([h.result for h in self.hosts]) if self.hosts else "failed"

    @property
    def succeeded(self) -> bool:
        return self.result == "succeeded"

    @property
    def reason(self) -> str | None:
        """The first reason for the result, for a one-line summary; None on success."""
        result = self.result
        if result == "succeeded":
            return None
        if self.error is not None:
            return self.error
        for step in self.steps:
            if step.status.value == result:
                return f"{step.component}/{step.action}: {step.reason}"
        for host in self.hosts:
            if host.result == result:
                return f"{host.host}: {host.reason}"
        return result

    def to_json(self) -> dict[str, object]:
        """The audit record's details: no raw output, only digests and excerpts."""
        data: dict[str, object] = {
            "map": self.map,
            "component": self.component,
            "action": self.action,
            "result": self.result,
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
            data["results"] = {h.host: h.result for h in self.hosts}
        return data


_STEP_RESULTS: dict[StepStatus, Result] = {
    StepStatus.FAILED: "failed",
    StepStatus.UNKNOWN: "unknown",
}
"""The result a step's status counts as (the others count as succeeded)."""
