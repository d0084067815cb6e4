"""Shared fixtures. ``sshd_fleet``: real OpenSSH servers on loopback (see tests/support/sshd.py).

Every test also runs under ``asyncio_leaks`` (fails a test that leaves asyncio tasks
running) and, from pyproject, pytest-timeout and warnings as errors.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd import SSHD, Fleet

pytest_plugins = ["asyncio_leaks", "pytester"]


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
