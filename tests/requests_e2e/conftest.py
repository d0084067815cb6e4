"""Fixtures of the requests end-to-end tests: one test sshd for the folder, worlds.

``tests/reconciler_e2e`` (its ``e2e_support``: ``opsmap run`` as a subprocess, bounded
waits, metrics parsing) and ``tests/git`` (``gitrepos``: real repos, merges by different
people) are put on ``sys.path`` here, as their own conftests do.
"""

from __future__ import annotations

import secrets
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "reconciler_e2e", HERE.parent / "git"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from requests_e2e_support import World, WorldFactory  # noqa: E402
from sshd import Fleet, Sshd  # noqa: E402


@pytest.fixture(scope="session")
def fleet_server(sshd_fleet: Fleet) -> Sshd:
    """The one sshd every world of this folder reaches (as ``app-01`` and ``db-01``)."""
    [server] = sshd_fleet.start(1)
    return server


@pytest.fixture
def make_world(tmp_path: Path, sshd_fleet: Fleet, fleet_server: Sshd) -> Iterator[WorldFactory]:
    """``make_world(name)``: a new world; its processes and services are stopped after."""
    made: list[World] = []

    def make(name: str) -> World:
        world = World.create(
            tmp_path / name,
            sshd_fleet,
            fleet_server,
            site_name=f"site-{name}-{secrets.token_hex(4)}",
        )
        made.append(world)
        return world

    try:
        yield make
    finally:
        for world in made:
            world.close()
            shutil.rmtree(world.site.dir, ignore_errors=True)
