"""The project's pytest settings make warnings errors and put a timeout on every test: a
short one, and a long one where real servers run (the ``long_timeouts`` plugin)."""

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
    header.stdout.fnmatch_lines(["*timeout: 60.0s*"])
    result = run_with_project_settings(pytester, HANGS, "-o", "timeout=2")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*Timeout*"])


# Stand-ins for the real parts, by the names of their fixtures; each test prints the
# timeout pytest-timeout will read (its mark, or pyproject's when it has none). The plugin
# is found on pyproject's pythonpath (tests/support), as in the project's own conftest.
REAL_PARTS = """
import pytest

pytest_plugins = ["long_timeouts"]

@pytest.fixture
def pg_cluster(): return None

@pytest.fixture
def pg_url(pg_cluster): return None

@pytest.fixture
def sshd_fleet(): return None

@pytest.fixture
def browser(): return None

@pytest.fixture
def site(browser): return None

@pytest.fixture(autouse=True)
def _show_timeout(request):
    mark = request.node.get_closest_marker("timeout")
    seconds = mark.args[0] if mark else request.config.getini("timeout")
    print(f"\\nTIMEOUT {request.node.name} {float(seconds)}")
"""

UNIT = """
import pytest

def test_unit(): pass

def test_pg(pg_url): pass

def test_through_a_fixture(site): pass

@pytest.mark.sshd
def test_marked(): pass

@pytest.mark.timeout(30)
def test_own_mark(sshd_fleet): pass
"""

END_TO_END = """
import pytest

def test_e2e(): pass

@pytest.mark.timeout(120)
def test_e2e_own_mark(): pass
"""


def test_the_long_timeout_goes_where_real_servers_run_and_only_there(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(REAL_PARTS)
    (pytester.path / "tests" / "loop").mkdir(parents=True)
    (pytester.path / "tests" / "loop" / "test_unit.py").write_text(UNIT)
    (pytester.path / "tests" / "requests_e2e").mkdir()
    (pytester.path / "tests" / "requests_e2e" / "test_e2e.py").write_text(END_TO_END)
    result = pytester.runpytest_subprocess(
        "-c", str(PYPROJECT), "--rootdir", str(pytester.path), "-p", "no:cacheprovider", "-s",
        str(pytester.path / "tests"),
    )  # fmt: skip
    result.assert_outcomes(passed=7)
    shown = sorted(line for line in result.outlines if line.startswith("TIMEOUT "))
    assert shown == [
        "TIMEOUT test_e2e 300.0",
        "TIMEOUT test_e2e_own_mark 120.0",
        "TIMEOUT test_marked 300.0",
        "TIMEOUT test_own_mark 30.0",
        "TIMEOUT test_pg 300.0",
        "TIMEOUT test_through_a_fixture 300.0",
        "TIMEOUT test_unit 60.0",
    ]
