"""The state directory: one reconciler at a time, and only a directory that is OpsMap's.

:func:`claim` runs before anything under the directory is read or written:

1. the directory must be OpsMap's: empty (or absent), or carrying the marker file
   ``opsmap-state``, or laid out as a release before the marker left it (nothing but
   ``opsmap.sqlite3`` with its journal files, ``git/``, ``checkout/``, ``opsmap.lock``;
   the database itself is checked next, by :mod:`reconciler.store.sqlite.schema`). Any
   other non-empty directory is refused before anything is created in it;
2. an exclusive ``flock`` on ``opsmap.lock``, which then holds the pid and start time of
   its holder: a second process is refused, naming them. The lock goes with the process
   (however it dies); the file stays, and its descriptor is not inherited by children;
3. :meth:`StateDirLock.adopt` writes the marker once the database proved to be OpsMap's.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

MARKER = "opsmap-state"
LOCK = "opsmap.lock"
DATABASE = "opsmap.sqlite3"
_MARKER_TEXT = (
    "This directory holds the state of an OpsMap reconciler (opsmap run --state-dir).\n"
    "Only one reconciler uses it at a time (see opsmap.lock). Do not edit its files.\n"
)
_EARLIER_LAYOUT = {
    DATABASE,
    f"{DATABASE}-wal",
    f"{DATABASE}-shm",
    f"{DATABASE}-journal",
    "git",
    "checkout",
    LOCK,
}
"""What a state directory held before the marker existed (and while one is created)."""
_HOLDER_MAX = 4096


class StateDirError(Exception):
    """The directory is not OpsMap's, cannot be used, or is used by another reconciler."""


class StateDirLock:
    """The claim on one state directory, held until :meth:`release` (or the process ends)."""

    def __init__(self, path: Path, fd: int, *, created_lock: bool, has_marker: bool) -> None:
        self.path = path
        self._fd: int | None = fd
        self._created_lock = created_lock
        self._has_marker = has_marker

    def adopt(self) -> None:
        """Mark the directory as OpsMap's (once its database was found to be OpsMap's)."""
        if self._has_marker:
            return
        temporary = self.path / f".{MARKER}.{os.getpid()}"
        try:
            with open(temporary, "x", encoding="utf-8") as out:
                out.write(_MARKER_TEXT)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path / MARKER)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise StateDirError(f"cannot write {self.path / MARKER}: {exc.strerror}") from exc
        self._has_marker = True

    def release(self, *, refused: bool = False) -> None:
        """Let the next reconciler in. ``refused``: the directory was not ours after all,
        so the lock file this process created is removed too (nothing of ours is left)."""
        if self._fd is None:
            return
        if refused and self._created_lock and not self._has_marker:
            with contextlib.suppress(OSError):
                (self.path / LOCK).unlink()
        os.close(self._fd)
        self._fd = None


def claim(path: Path) -> StateDirLock:
    """Check that ``path`` may be OpsMap's and lock it (see the module's docstring)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        entries = {entry.name for entry in os.scandir(path)}
    except OSError as exc:
        raise StateDirError(f"cannot use state directory {path}: {exc.strerror}") from exc
    has_marker = MARKER in entries
    if entries and not has_marker and not _earlier_layout(path, entries):
        shown = ", ".join(sorted(entries)[:5]) + (", …" if len(entries) > 5 else "")
        raise StateDirError(
            f"state directory {path} is not empty and is not OpsMap's (no {MARKER} file; "
            f"it holds {shown}): refusing to write into it; give an empty or new directory"
        )
    lock_path = path / LOCK
    created = LOCK not in entries
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StateDirError(f"cannot open {lock_path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise StateDirError(
            f"state directory {path} is in use by another OpsMap ({holder}); "
            "one reconciler per state directory"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise StateDirError(f"cannot lock {lock_path}: {exc.strerror}") from exc
    try:
        _write_holder(fd)
    except OSError as exc:
        os.close(fd)
        raise StateDirError(f"cannot write {lock_path}: {exc.strerror}") from exc
    return StateDirLock(path, fd, created_lock=created, has_marker=has_marker)


def _earlier_layout(path: Path, entries: set[str]) -> bool:
    """Whether a marker-less directory looks like OpsMap's own (database checked later)."""
    if DATABASE not in entries or not entries <= _EARLIER_LAYOUT:
        return False
    try:
        with open(path / DATABASE, "rb") as db:
            return db.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def _write_holder(fd: int) -> None:
    started = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": started}
    data = (json.dumps(holder) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _read_holder(fd: int) -> str:
    """``pid 123 on host, started …`` from the lock file, as far as it can be read."""
    try:
        holder = json.loads(os.pread(fd, _HOLDER_MAX, 0).decode())
        pid, host, started = int(holder["pid"]), str(holder["host"]), str(holder["started"])
        datetime.fromisoformat(started.replace("Z", "+00:00"))
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown: it is starting, or its lock file is unreadable"
    return f"pid {pid} on {host!r}, started {started}"
