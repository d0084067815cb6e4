"""The project's pytest settings make warnings errors and put a timeout on every test."""

from __future__ import annotations

from pathlib import Path

import pytest

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

WARNS = """
import warnings

def test_warns():
    warnings.warn("this API is going away", DeprecationWarning, stacklevel=1)

def test_quiet():
    pass
"""

HANGS = """
import threading

def test_hangs():
    threading.Event().wait()

def test_after_the_hang():
    pass
"""


def run_with_project_settings(
    pytester: pytest.Pytester, source: str, *args: str
) -> pytest.RunResult:
    """Run ``source`` as a test file under this project's pyproject.toml settings."""
    test_file = pytester.makepyfile(source)
    return pytester.runpytest_subprocess(
        "-c", str(PYPROJECT), "--rootdir", str(pytester.path), "-p", "no:cacheprovider",
        *args, str(test_file),
    )  # fmt: skip


def test_a_warning_fails_its_test(pytester: pytest.Pytester) -> None:
    result = run_with_project_settings(pytester, WARNS)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*DeprecationWarning: this API is going away*"])


def test_every_test_has_a_timeout_and_a_hang_does_not_stop_the_session(
    pytester: pytest.Pytester,
) -> None:
    header = run_with_project_settings(pytester, HANGS, "--collect-only")
    header.stdout.fnmatch_lines(["*timeout: 300.0s*"])
    result = run_with_project_settings(pytester, HANGS, "-o", "timeout=2")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*Timeout*"])
