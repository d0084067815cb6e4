from __future__ import annotations

from pathlib import Path

import pytest
from gitrepos import ALICE, BareRepo, Clone

from reconciler.git.mirror import GitSource


@pytest.fixture
def remote(tmp_path: Path) -> BareRepo:
    return BareRepo.create(tmp_path / "remote.git")


@pytest.fixture
def clone(remote: BareRepo, tmp_path: Path) -> Clone:
    """A clone of ``remote`` with one pushed commit by Alice."""
    work = Clone.create(remote, tmp_path / "work")
    work.commit("initial map", author=ALICE, files={"maps/demo.yaml": "name: demo\n"})
    work.push()
    return work


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def source(remote: BareRepo, clone: Clone, cache_dir: Path) -> GitSource:
    """A source following ``remote`` (already holding the clone's first commit)."""
    return GitSource(remote.url, cache_dir=cache_dir, timeout_s=30)
