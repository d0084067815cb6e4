"""A pytest plugin: the long timeout, for the tests that wait on real servers.

pyproject gives every test ``timeout`` (60 s), ample for a unit test: a hang then fails in
a minute, not five. A test that runs real OpenSSH, PostgreSQL, Chromium or ``opsmap run``
processes waits on them, and on a loaded machine for much longer; it gets ``LONG_S`` when

- it lives under one of ``LONG_FOLDERS`` (below ``tests/``), or
- it is marked with one of ``LONG_MARKS``, or
- it uses, directly or through another fixture, one of ``LONG_FIXTURES``,

unless it carries its own ``timeout`` mark, which always wins. This is the one place the
rule is written; pyproject's comment points here.
"""

from __future__ import annotations

import pytest

LONG_S = 300

LONG_FOLDERS = {
    "reconciler_e2e": "`opsmap run` processes on real git repos, sshd and PostgreSQL",
    "requests_e2e": "requests carried out by `opsmap run` processes on real sshd",
    "packaging": "job venvs of the CI templates, a real `opsmap run` scraped for the dashboard",
}
LONG_MARKS = {"sshd": "real OpenSSH servers on loopback"}
LONG_FIXTURES = {
    "sshd_fleet": "real OpenSSH servers (tests/support/sshd.py)",
    "pg_cluster": "a throwaway PostgreSQL cluster (tests/support/pgcluster.py), pg_url too",
    "processes": "`opsmap run` processes (tests/support/e2e_support.py)",
    "browser": "headless Chromium (tests/support/browser.py)",
}


def waits_on_real_servers(item: pytest.Item) -> bool:
    """Whether ``item`` runs one of the real parts, by its folder, marks or fixtures."""
    tests = item.config.rootpath / "tests"
    if item.path.is_relative_to(tests):
        parts = item.path.relative_to(tests).parts
        if len(parts) > 1 and parts[0] in LONG_FOLDERS:
            return True
    if any(item.get_closest_marker(name) for name in LONG_MARKS):
        return True
    return not LONG_FIXTURES.keys().isdisjoint(getattr(item, "fixturenames", ()))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is None and waits_on_real_servers(item):
            item.add_marker(pytest.mark.timeout(LONG_S))
