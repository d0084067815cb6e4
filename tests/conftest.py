"""Shared fixtures. ``sshd_fleet``: real OpenSSH servers on loopback (see tests/support/sshd.py);
``pg_cluster``: a throwaway PostgreSQL cluster, ``pg_url``: a fresh database in it, per test
(see tests/support/pgcluster.py); ``any_store``: a fresh store, SQLite and PostgreSQL
(tests/support/store_fixtures.py).

Every test also runs under ``asyncio_leaks`` (fails a test that leaves asyncio tasks
running), ``long_timeouts`` (300 s instead of pyproject's 60 s for a test that runs real
sshd, PostgreSQL, Chromium or ``opsmap run``) and, from pyproject, pytest-timeout and
warnings as errors.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pgcluster
import pytest
from sshd import SSHD, Fleet

pytest_plugins = ["asyncio_leaks", "long_timeouts", "pytester", "store_fixtures"]


@pytest.fixture(scope="session")
def sshd_fleet() -> Iterator[Fleet]:
    """A session-wide fleet factory: ``sshd_fleet.start(n)`` starts n more servers.

    Its directory is world-readable (the test user reads ``authorized_keys`` there), so
    it lives in its own temp directory rather than pytest's private one. Every server is
    stopped and the directory removed at the end of the session.
    """
    if not Path(SSHD).exists():
        pytest.skip("openssh-server is not installed (apt-get install openssh-server)")
    workdir = Path(tempfile.mkdtemp(prefix="opsmap-sshd-"))
    fleet = Fleet(workdir)
    try:
        yield fleet
    finally:
        fleet.close()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[pgcluster.Cluster]:
    """A PostgreSQL cluster for the session (initdb once, a second or two), stopped and
    removed at the end; skipped where Debian's postgresql is not installed."""
    if not pgcluster.available():
        pytest.skip("postgresql is not installed (apt-get install postgresql)")
    cluster = pgcluster.Cluster()
    try:
        cluster.init()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def pg_url(pg_cluster: pgcluster.Cluster) -> Iterator[str]:
    """The URL of a new, empty database (over the unix socket, no password), and the
    cluster started again after the test if the test stopped it."""
    yield pg_cluster.url(pg_cluster.database())
    if not (pg_cluster.data / "postmaster.pid").exists():
        pg_cluster.start()
