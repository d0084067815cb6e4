"""Fixtures of the audit tests: a real remote, a clone with commits, the reconciler's mirror.

``gitrepos`` (in ``tests/support``, on pytest's ``pythonpath``) builds the repos.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_support import World
from gitrepos import ALICE, BOB, BareRepo, Clone

from reconciler.audit import AuditLog, NotesPublisher
from reconciler.git.mirror import GitSource
from reconciler.store.sqlite import SqliteStore


@pytest.fixture
def world(tmp_path: Path) -> World:
    remote = BareRepo.create(tmp_path / "remote.git")
    clone = Clone.create(remote, tmp_path / "work")
    first = clone.commit("initial map", author=ALICE, files={"maps/demo.yaml": "name: demo\n"})
    _, second = clone.pull_request(
        "pr-1", {"requests/r1.yaml": "action: restart\n"}, author=ALICE, merger=BOB
    )
    clone.push()
    source = GitSource(remote.url, cache_dir=tmp_path / "cache", timeout_s=30)
    source.fetch()
    return World(remote, clone, source, first, second)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    """The state store, with its whole schema (as the reconciler has it)."""
    opened = SqliteStore(tmp_path / "state")
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def log(store: SqliteStore) -> AuditLog:
    return AuditLog(store.outbox)


@pytest.fixture
def publisher(world: World) -> NotesPublisher:
    return NotesPublisher(world.source.mirror, world.source.url, timeout_s=30)
