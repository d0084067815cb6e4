"""The state directory's claim: the lock, its holder's name, the marker, what is refused."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from reconciler.store.protocol import StateError
from reconciler.store.sqlite import SqliteStore


def test_the_lock_is_held_until_close_and_names_its_holder(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state")
    try:
        with pytest.raises(StateError, match=rf"in use by another OpsMap \(pid {os.getpid()} "):
            SqliteStore(tmp_path / "state")
    finally:
        store.close()
    SqliteStore(tmp_path / "state").close()  # free again
    assert (tmp_path / "state" / "opsmap-state").is_file()


def test_an_unreadable_holder_is_said_so(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state")
    try:
        (tmp_path / "state" / "opsmap.lock").write_text('{"pid": "\x1b[2J"}')
        with pytest.raises(StateError, match="pid unknown: it is starting, or its lock file"):
            SqliteStore(tmp_path / "state")
    finally:
        store.close()


def test_a_symlinked_lock_file_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    state = tmp_path / "state"
    SqliteStore(state).close()
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    (state / "opsmap.lock").unlink()
    (state / "opsmap.lock").symlink_to(target)
    with pytest.raises(StateError, match=r"cannot open .*opsmap\.lock"):
        SqliteStore(state)
    assert target.read_text() == "keep me\n"


def test_processes_started_while_it_is_held_do_not_inherit_the_lock(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state")
    try:
        fds = subprocess.run(
            ["sh", "-c", "ls -l /proc/$$/fd"], capture_output=True, text=True, check=True
        ).stdout
    finally:
        store.close()
    assert "opsmap.lock" not in fds, fds
    assert "opsmap.sqlite3" not in fds, fds


def test_a_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("not a directory\n")
    with pytest.raises(StateError, match="cannot use state directory"):
        SqliteStore(tmp_path / "state")
