"""Reading a file whose name comes from untrusted text, confined to one directory.

A map repo names files (``known_hosts`` in the repo, ``identity_file`` in the operator's
key directory). Like ``shlex.quote`` for commands, the check and the open live together,
here, in :func:`read_confined`:

- the name is relative: no absolute path, no ``..``, no ``~``, no empty or NUL part
  (:func:`relative_problem`, which validation uses too);
- every folder on the way is opened with ``O_NOFOLLOW`` from the one before, starting at
  ``base``, so no symlink at any depth leads out; the file itself is opened with
  ``O_NOFOLLOW | O_NONBLOCK`` (a FIFO never blocks the open);
- after the open, ``fstat`` must show a regular file no larger than ``max_bytes``, and at
  most ``max_bytes`` are read (a file growing meanwhile is refused too).

Errors are :class:`UnsafeFile`; their reason names the file and the rule, never its content.
:func:`read_confined_async` runs the read on a worker thread, bounded in time, so the event
loop never waits on a disk (or a hung network file system).
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import stat
from pathlib import Path, PurePosixPath

__all__ = [
    "DEFAULT_KEY",
    "MAX_KEY_BYTES",
    "MAX_KNOWN_HOSTS_BYTES",
    "UnsafeFile",
    "default_key_name",
    "read_confined",
    "read_confined_async",
    "read_operator_file",
    "read_operator_file_async",
    "relative_problem",
    "shown_name",
]

DEFAULT_READ_TIMEOUT_S = 5.0
#: Largest ``known_hosts`` file read (one line per host; 1 MiB is thousands of hosts).
MAX_KNOWN_HOSTS_BYTES = 1 << 20
#: Largest private key file read (an RSA 16384-bit key in OpenSSH format is ~13 KB).
MAX_KEY_BYTES = 64 << 10
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_MAX_NAME = 1024
#: The name of an operator's default key (``~/.ssh/id_*``, not a ``.pub``).
DEFAULT_KEY = re.compile(r"id_[A-Za-z0-9_-]+")


class UnsafeFile(Exception):
    """A named file cannot be read safely: outside its place, not a regular file, too big."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{shown_name(name)}: {reason}")
        self.name = name
        self.reason = reason


def shown_name(name: str) -> str:
    """``name`` quoted for a message: control characters escaped, at most 120 characters."""
    text = repr(name[:120])
    return text + "…" if len(name) > 120 else text


def default_key_name(identity_file: str) -> str | None:
    """``id_x`` for ``~/.ssh/id_x``, one of the operator's default keys; else None."""
    home, _, name = identity_file.rpartition("/")
    return name if home == "~/.ssh" and DEFAULT_KEY.fullmatch(name) else None


def relative_problem(name: str) -> str | None:
    """Why ``name`` is not a plain relative path inside its folder; None when it is."""
    if not name:
        return "is empty"
    if len(name) > _MAX_NAME:
        return f"is longer than {_MAX_NAME} characters"
    if "\0" in name:
        return "contains a NUL character"
    if name.startswith("~"):
        return "starts with '~': it must be a relative path, not a home directory"
    pure = PurePosixPath(name)
    if pure.is_absolute() or name.startswith("\\"):
        return "is an absolute path: it must be relative"
    if ".." in pure.parts:
        return "contains '..': it must stay inside its folder"
    if not pure.parts or pure.parts == (".",):
        return "names no file"
    return None


def read_confined(base: Path, relative: str, *, max_bytes: int) -> bytes:
    """The content of ``base/relative``, read as the module docstring says.

    ``base`` is the operator's or OpsMap's own directory and is opened as given;
    everything below it comes from ``relative`` and is never followed through a symlink.
    """
    problem = relative_problem(relative)
    if problem is not None:
        raise UnsafeFile(relative, problem)
    *folders, leaf = PurePosixPath(relative).parts
    try:
        dir_fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise UnsafeFile(relative, f"its folder {base} cannot be opened: {_why(exc)}") from exc
    try:
        for folder in folders:
            try:
                next_fd = os.open(folder, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                raise UnsafeFile(relative, _folder_reason(folder, exc)) from exc
            os.close(dir_fd)
            dir_fd = next_fd
        try:
            fd = os.open(leaf, _FILE_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            raise UnsafeFile(relative, _leaf_reason(exc)) from exc
    finally:
        os.close(dir_fd)
    try:
        return _read_regular(fd, relative, max_bytes)
    finally:
        os.close(fd)


def read_operator_file(path: Path, *, max_bytes: int) -> bytes:
    """A file the operator named (``~/.ssh/known_hosts``): its symlinks are followed, since
    the operator chose them, then it is read as :func:`read_confined` reads."""
    try:
        real = path.resolve(strict=True)
    except OSError as exc:
        raise UnsafeFile(str(path), _leaf_reason(exc)) from exc
    return read_confined(real.parent, real.name, max_bytes=max_bytes)


async def read_confined_async(
    base: Path, relative: str, *, max_bytes: int, timeout_s: float = DEFAULT_READ_TIMEOUT_S
) -> bytes:
    """:func:`read_confined` on a worker thread, given up after ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s):
            return await asyncio.to_thread(read_confined, base, relative, max_bytes=max_bytes)
    except TimeoutError as exc:
        raise UnsafeFile(relative, f"not read within {timeout_s:g}s") from exc


async def read_operator_file_async(
    path: Path, *, max_bytes: int, timeout_s: float = DEFAULT_READ_TIMEOUT_S
) -> bytes:
    """:func:`read_operator_file` on a worker thread, given up after ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s):
            return await asyncio.to_thread(read_operator_file, path, max_bytes=max_bytes)
    except TimeoutError as exc:
        raise UnsafeFile(str(path), f"not read within {timeout_s:g}s") from exc


def _read_regular(fd: int, name: str, max_bytes: int) -> bytes:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeFile(name, f"is not a regular file (it is {_kind(info.st_mode)})")
    if info.st_size > max_bytes:
        raise UnsafeFile(name, f"is {info.st_size} bytes, over the {max_bytes}-byte limit")
    chunks: list[bytes] = []
    left = max_bytes + 1
    while left > 0:
        try:
            chunk = os.read(fd, min(left, 65536))
        except OSError as exc:
            raise UnsafeFile(name, f"cannot be read: {_why(exc)}") from exc
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise UnsafeFile(name, f"grew over the {max_bytes}-byte limit while being read")
    return data


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


def _folder_reason(folder: str, exc: OSError) -> str:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return f"{shown_name(folder)} on its path is a symlink or not a folder"
    if exc.errno == errno.ENOENT:
        return "does not exist"
    return f"cannot be opened: {_why(exc)}"


def _leaf_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "is a symlink (never followed)"
    if exc.errno == errno.ENOENT:
        return "does not exist"
    return f"cannot be opened: {_why(exc)}"


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
