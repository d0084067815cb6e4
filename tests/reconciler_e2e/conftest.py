"""Fixtures of the reconciler's end-to-end tests: a map repo, process cleanup, ``opsmap run``.

``gitrepos`` builds the real git repos, ``e2e_support`` runs ``opsmap``; both are in
``tests/support``, on pytest's ``pythonpath``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import Opsmap, Processes, start_opsmap
from gitrepos import BareRepo, Clone


@pytest.fixture
def processes() -> Iterator[Processes]:
    """Every process a test starts; the groups still running are killed at teardown."""
    started = Processes()
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def remote(tmp_path: Path) -> BareRepo:
    return BareRepo.create(tmp_path / "remotes" / "remote.git")


@pytest.fixture
def clone(remote: BareRepo, tmp_path: Path) -> Clone:
    """An empty clone of ``remote``: each test commits and pushes its own first map."""
    return Clone.create(remote, tmp_path / "work")


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def opsmap(processes: Processes, tmp_path: Path, state_dir: Path) -> Callable[..., Opsmap]:
    """Start ``opsmap run --repo REPO`` (keyword arguments of :func:`start_opsmap`)."""

    def start(repo: str, **kw: Any) -> Opsmap:
        kw.setdefault("state_dir", state_dir)
        kw.setdefault("log", tmp_path / "opsmap.log")
        return start_opsmap(processes, repo=repo, **kw)

    return start
