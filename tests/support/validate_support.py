"""Shared helpers for the ``opsmap validate`` tests: small map repos written to a temp folder.

``repo`` writes files (text is dedented), finds where a piece of text sits in a file (to
expect a finding at that line and column), and runs the real CLI in-process with
``--format json`` from the repo root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main

PROJECT = Path(__file__).resolve().parents[2]
SHARED = PROJECT.parent / "shared"
SEED = SHARED / "reference" / "trading-platform.map.yaml"
_SCRIPT = shutil.which("opsmap")
OPSMAP = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "reconciler"]
"""The installed console script (``python -m reconciler`` when it is not on PATH)."""


@dataclass
class Outcome:
    """What one ``opsmap validate --format json`` run printed and returned."""

    code: int
    report: dict[str, Any]
    stderr: str

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.report["errors"]

    @property
    def warnings(self) -> list[dict[str, Any]]:
        return self.report["warnings"]

    @property
    def findings(self) -> list[dict[str, Any]]:
        return [*self.errors, *self.warnings]

    def with_code(self, code: str) -> list[dict[str, Any]]:
        return [f for f in self.findings if f["code"] == code]

    def one(self, code: str, *, severity: str = "error") -> dict[str, Any]:
        """The single finding of ``code``, which must be of ``severity``."""
        pool = self.errors if severity == "error" else self.warnings
        found = [f for f in pool if f["code"] == code]
        assert len(found) == 1, f"expected one {severity} [{code}], got {self.describe()}"
        return found[0]

    def describe(self) -> str:
        return json.dumps(self.report, indent=1, ensure_ascii=False)


@dataclass
class Repo:
    """A map repo under construction in a temp folder."""

    root: Path
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch
    files: dict[str, str] = field(default_factory=dict)

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        body = textwrap.dedent(text).lstrip("\n")
        path.write_text(body, encoding="utf-8")
        self.files[rel] = body
        return path

    def pos(self, rel: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
        """1-based (line, column) of the ``occurrence``-th ``needle`` in file ``rel``."""
        text = self.files[rel]
        start = -1
        for _ in range(occurrence):
            start = text.index(needle, start + 1)
        line = text.count("\n", 0, start) + 1
        column = start - (text.rfind("\n", 0, start) + 1) + 1
        return line, column

    def validate(self, *args: str, cwd: Path | None = None) -> Outcome:
        """Run ``opsmap validate --format json ARGS`` in-process, from the repo root."""
        self.capsys.readouterr()
        self.monkeypatch.chdir(cwd or self.root)
        code = main(["validate", "--format", "json", *args])
        out, err = self.capsys.readouterr()
        try:
            report = json.loads(out)
        except json.JSONDecodeError:
            pytest.fail(f"--format json printed no JSON (exit {code}):\n{out}\n{err}")
        return Outcome(code, report, err)

    def assert_at(
        self, finding: dict[str, Any], rel: str, needle: str, occurrence: int = 1
    ) -> None:
        line, column = self.pos(rel, needle, occurrence)
        got = (finding["file"], finding["line"], finding["column"])
        assert got == (rel, line, column), (
            f"expected {rel}:{line}:{column} (at {needle!r}), got {got}: {finding['message']}"
        )


def run_cli(
    *args: str, cwd: Path, timeout: float = 10, memory_bytes: int | None = None
) -> subprocess.CompletedProcess[str]:
    """``opsmap ARGS`` as a real process (timeout is a hang guard, not a timing test)."""

    def limit() -> None:
        if memory_bytes is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [*OPSMAP, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        preexec_fn=limit if memory_bytes else None,
        env=env,
        check=False,
    )
