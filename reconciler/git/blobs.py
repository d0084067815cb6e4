"""Reading blobs of a mirror through one long-lived ``git cat-file --batch-command``.

Starting git costs milliseconds; a revision of a few hundred files would start it a few
hundred times. :class:`BlobReader` keeps one process per mirror (as GitPython's
persistent ``cat-file`` reader does) and asks it, for each object, first for its header
(``info``: type and size) and then, when it is a blob under the size cap, for its content
(``contents``), reading exactly the size the header gave. So a blob over the cap is
refused (:class:`BlobTooLarge`) without git ever writing it to us.

Every read has a deadline: a process that does not answer in time is killed (with its
session) and the read fails with a :class:`GitSourceError`. A process that died (killed,
crashed, its pipe closed) is started again once for the next object. A lock makes the
reader safe from any thread, one object at a time; :meth:`BlobReader.close` ends the
process (and a reader dropped without closing kills it when collected). The child gets
git's minimal environment (:func:`reconciler.git.runner.git_environment`).
"""

from __future__ import annotations

import os
import select
import subprocess
import threading
import time
import weakref
from pathlib import Path

from reconciler.git.errors import GitSourceError
from reconciler.git.runner import git_environment, kill_session

_CHUNK = 1 << 16


class BlobTooLarge(GitSourceError):
    """A blob over the reader's size cap: refused unread (``size`` is what git reported)."""

    def __init__(self, remote: str, name: str, size: int, limit: int) -> None:
        super().__init__(remote, f"{name}: {size} bytes, over the {limit}-byte limit")
        self.size = size
        self.limit = limit


class _Dead(Exception):
    """The process ended or closed its pipe mid-conversation."""


class BlobReader:
    """One ``git cat-file --batch-command`` on ``git_dir``, started on first use."""

    def __init__(self, git_dir: Path, *, remote: str, timeout_s: float, max_bytes: int) -> None:
        self.git_dir = git_dir
        self.remote = remote
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes]], BlobReader] | None = None

    @property
    def pid(self) -> int | None:
        """The running process's id, None when none is running (tests follow restarts)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def read(self, name: str) -> bytes | None:
        """The content of blob ``name`` (an object id or ``<commit>:<path>``).

        None when git has no such object, or it is not a blob (a tree, a commit). Raises
        :class:`BlobTooLarge` over ``max_bytes``, :class:`GitSourceError` when git fails or
        runs out of time. ``name`` must be one line.
        """
        if "\n" in name or "\0" in name:
            raise ValueError(f"not a one-line object name: {name!r}")
        with self._lock:
            try:
                return self._ask(name)
            except _Dead:
                self._stop()  # once more, with a fresh process
            try:
                return self._ask(name)
            except _Dead as exc:
                self._stop()
                raise GitSourceError(self.remote, "git cat-file ended unexpectedly") from exc

    def close(self) -> None:
        """End the process (a later :meth:`read` starts a new one)."""
        with self._lock:
            self._stop()

    def _ask(self, name: str) -> bytes | None:
        deadline = time.monotonic() + self.timeout_s
        proc = self._process()
        header = self._request(proc, f"info {name}\n", deadline)
        kind, size = _parse_header(header, name, self.remote)
        if kind != "blob":
            return None
        if size > self.max_bytes:
            raise BlobTooLarge(self.remote, name, size, self.max_bytes)
        header = self._request(proc, f"contents {name}\n", deadline)
        kind, size = _parse_header(header, name, self.remote)
        if kind != "blob" or size > self.max_bytes:
            # The object cannot change between two questions: git is not the one we know.
            self._stop()
            raise GitSourceError(self.remote, f"git cat-file answered {header!r} for {name}")
        content = self._read_exactly(proc, size + 1, deadline)
        if content[-1:] != b"\n":
            self._stop()
            raise GitSourceError(self.remote, f"git cat-file: malformed content of {name}")
        return content[:-1]

    def _process(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._stop()
        command = ["git", "--git-dir", str(self.git_dir), "cat-file", "--batch-command"]
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                cwd="/",
                env=git_environment(),
                start_new_session=True,
            )
        except OSError as exc:
            raise GitSourceError(self.remote, f"cannot run git: {exc.strerror}") from exc
        self._proc, self._buffer = proc, b""
        self._finalizer = weakref.finalize(self, kill_session, proc)
        return proc

    def _request(self, proc: subprocess.Popen[bytes], line: str, deadline: float) -> bytes:
        assert proc.stdin is not None
        try:
            proc.stdin.write(line.encode("utf-8", "surrogateescape"))
            proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError) as exc:
            raise _Dead from exc
        return self._read_line(proc, deadline)

    def _read_line(self, proc: subprocess.Popen[bytes], deadline: float) -> bytes:
        while b"\n" not in self._buffer:
            if len(self._buffer) > _CHUNK:
                self._stop()
                raise GitSourceError(self.remote, "git cat-file: header line too long")
            self._fill(proc, deadline)
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _read_exactly(self, proc: subprocess.Popen[bytes], size: int, deadline: float) -> bytes:
        chunks, have = [self._buffer], len(self._buffer)
        self._buffer = b""
        while have < size:
            chunk = self._fill_chunk(proc, deadline, size - have)
            chunks.append(chunk)
            have += len(chunk)
        data = b"".join(chunks)
        self._buffer = data[size:]
        return data[:size]

    def _fill(self, proc: subprocess.Popen[bytes], deadline: float) -> None:
        self._buffer += self._fill_chunk(proc, deadline, _CHUNK)

    def _fill_chunk(self, proc: subprocess.Popen[bytes], deadline: float, want: int) -> bytes:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        left = deadline - time.monotonic()
        ready = select.select([fd], [], [], max(left, 0))[0] if left > 0 else []
        if not ready:
            self._stop()
            raise GitSourceError(self.remote, f"git cat-file timed out after {self.timeout_s:g}s")
        chunk = os.read(fd, min(want, 1 << 20))
        if not chunk:
            raise _Dead
        return chunk

    def _stop(self) -> None:
        proc, self._proc, self._buffer = self._proc, None, b""
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if proc is not None:
            kill_session(proc)


def _parse_header(header: bytes, name: str, remote: str) -> tuple[str | None, int]:
    """``(type, size)`` from ``<oid> <type> <size>``; ``(None, 0)`` for a missing object."""
    words = header.decode("ascii", "replace").split()
    if len(words) == 3 and words[2].isdigit():
        return words[1], int(words[2])
    if words[-1:] in (["missing"], ["ambiguous"]):
        return None, 0
    raise GitSourceError(remote, f"git cat-file: unexpected answer for {name}: {header[:200]!r}")
