"""Findings: what validation reports, where, and how it is printed."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from reconciler.inert import for_log, for_terminal, one_line

MAX_SHOWN_CHARS = 1000
"""A message or a file name is shown to at most this many characters (the YAML may hold more)."""


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True, order=True)
class Location:
    """A place in a file: 1-based line and column, as editors count them."""

    file: str
    line: int = 1
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Finding:
    """One error or warning about the map repo, at the node that caused it."""

    location: Location
    severity: Severity
    code: str
    message: str

    def as_error(self) -> Finding:
        return Finding(self.location, Severity.ERROR, self.code, self.message)

    def to_json(self) -> dict[str, object]:
        """The finding for ``--format json``: file name and message capped as on the terminal."""
        where = asdict(self.location)
        where["file"] = _cap(where["file"])
        return {**where, "code": self.code, "message": _cap(self.message)}

    def sort_key(self) -> tuple[str, int, int, str]:
        loc = self.location
        return (loc.file, loc.line, loc.column, self.code)


def errors(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity is Severity.ERROR]


def format_text(findings: Sequence[Finding]) -> str:
    """``path:line:col: error|warning: message [code]``, one inert line per finding."""
    return "".join(
        f"{_cap(for_log(f.location))}: {f.severity.value}: {_cap(one_line(f.message))} [{f.code}]\n"
        for f in findings
    )


def format_json(findings: Sequence[Finding]) -> str:
    errs = [f.to_json() for f in findings if f.severity is Severity.ERROR]
    warns = [f.to_json() for f in findings if f.severity is Severity.WARNING]
    return json.dumps({"valid": not errs, "errors": errs, "warnings": warns}, indent=2) + "\n"


def format_github(findings: Sequence[Finding]) -> str:
    """GitHub Actions workflow commands: ``::error file=…,line=…,col=…::message``.

    Escaped as the runner reads them (``%``, CR and LF in data; also ``:`` and ``,`` in
    properties), after the text is made inert: the log viewer shows ANSI sequences.
    """
    lines = []
    for f in findings:
        loc = f.location
        props = f"file={_gh_property(_cap(for_log(loc.file)))},line={loc.line},col={loc.column}"
        title = _gh_property(for_log(f"opsmap {f.code}"))
        message = _gh_data(for_terminal(f"{_cap(f.message)} [{f.code}]"))
        lines.append(f"::{f.severity.value} {props},title={title}::{message}\n")
    return "".join(lines)


def _cap(text: str) -> str:
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 1] + "…"


def _gh_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(value: str) -> str:
    return _gh_data(value).replace(":", "%3A").replace(",", "%2C")
