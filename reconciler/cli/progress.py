"""``opsmap check``'s progress and summary, on stderr, so that stdout stays the table.

While checks run, a terminal on stderr shows ``checking: 12/40 done`` on one line,
rewritten as each check finishes (at most ten times a second) and erased at the end;
anything else (a file, a pipe, CI's log) gets no progress. Then one summary line, on any
stderr: ``40 checks on 20 hosts: 38 OK, 1 WARNING, 1 CRITICAL in 3.2s``. ``-q`` shows
neither.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import TextIO

from agentless.runner import CheckRun

STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
_EVERY_S = 0.1


def is_terminal(stream: TextIO) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False


class Progress:
    """Counts finished checks out of ``total`` and shows it when stderr is a terminal."""

    def __init__(self, total: int, *, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.total = total
        self.finished = 0
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.live = not quiet and is_terminal(self.stream)
        self.started = time.monotonic()
        self._shown_at = 0.0
        self._shown = False

    def done(self, _run: CheckRun) -> None:
        """One more check finished (``run_checks``' ``on_result``)."""
        self.finished += 1
        now = time.monotonic()
        if self.live and (now - self._shown_at >= _EVERY_S or self.finished == self.total):
            self._shown_at = now
            self._shown = True
            self.stream.write(f"\rchecking: {self.finished}/{self.total} done")
            self.stream.flush()

    def clear(self) -> None:
        """Erase the progress line, if one is shown."""
        if self._shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._shown = False

    def summary(self, runs: Sequence[CheckRun], *, hosts: int) -> None:
        """The one summary line, unless quiet."""
        if self.quiet:
            return
        states = Counter(r.outcome.state.name for r in runs)
        counts = ", ".join(f"{states[s]} {s}" for s in STATES if states[s])
        took = time.monotonic() - self.started
        checks = "check" if len(runs) == 1 else "checks"
        on = "host" if hosts == 1 else "hosts"
        self.stream.write(f"{len(runs)} {checks} on {hosts} {on}: {counts} in {took:.1f}s\n")
        self.stream.flush()
