"""Fixtures of the requests end-to-end tests: one test sshd for the folder, worlds.

The helpers come from ``tests/support`` (on pytest's ``pythonpath``): ``e2e_support``
(``opsmap run`` as a subprocess, bounded waits, metrics parsing) and ``gitrepos`` (real
repos, merges by different people).
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from requests_e2e_support import World, WorldFactory
from sshd import Fleet, Sshd


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
