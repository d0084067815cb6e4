"""Following a repo on this machine by watching its refs instead of polling.

A push into a local bare repo or a commit in a local checkout rewrites a file under
``refs/`` (through a ``.lock`` file and a rename), ``packed-refs`` or ``HEAD``; watching
those is enough to know that the tracked branch may have moved. Working-tree edits are not
watched: only commits are revisions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path, PurePath
from urllib.parse import unquote, urlsplit

import watchfiles

from reconciler.git.errors import GitSourceError

log = logging.getLogger(__name__)

DEBOUNCE_MS = 100
WATCH_SETUP_TIMEOUT_S = 10.0
_TOP_LEVEL_REFS = {"HEAD", "packed-refs"}


def local_path(url: str) -> Path | None:
    """The directory a ``file://`` URL or a plain path names; None for a network remote.

    As git reads it: ``host:path`` (a colon before any slash) is scp-style SSH.
    """
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            return None
        return Path(unquote(parts.path))
    colon, slash = url.find(":"), url.find("/")
    if colon != -1 and (slash == -1 or colon < slash):
        return None
    return Path(url).expanduser()


def is_local(url: str) -> bool:
    """Whether ``url`` is a repo on this machine (a path or a ``file://`` URL)."""
    return local_path(url) is not None


def refs_dir(path: Path) -> Path:
    """The git directory that holds the refs of the repo at ``path`` (bare or checkout).

    For a linked worktree or a submodule (``.git`` is a file), the common directory.
    """
    dot_git = path / ".git"
    if dot_git.is_dir():
        return dot_git
    if dot_git.is_file():
        text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
        if text.startswith("gitdir:"):
            git_dir = (path / text.removeprefix("gitdir:").strip()).resolve()
            common = git_dir / "commondir"
            if common.is_file():
                return (git_dir / common.read_text(encoding="utf-8").strip()).resolve()
            return git_dir
    if (path / "HEAD").is_file() and (path / "refs").is_dir():
        return path
    raise GitSourceError(str(path), "not a git repository")


async def watch_local(
    url: str | Path,
    *,
    stop_event: asyncio.Event | None = None,
    debounce_ms: int = DEBOUNCE_MS,
) -> AsyncIterator[None]:
    """Yield each time a branch of the local repo at ``url`` may have moved.

    Changes within ``debounce_ms`` are grouped into one yield. Ends when ``stop_event`` is
    set. Raises :class:`GitSourceError` if ``url`` is not a local git repository.
    """
    path = local_path(str(url))
    if path is None:
        raise GitSourceError(str(url), "not a local repository: cannot be watched")
    # a few stats and reads of small files, but of a filesystem that may hang: off the loop
    try:
        async with asyncio.timeout(WATCH_SETUP_TIMEOUT_S):
            git_dir = await asyncio.to_thread(lambda: refs_dir(path.resolve()))
    except TimeoutError:
        raise GitSourceError(str(path), "its git directory could not be read in time") from None

    def ref_changed(_change: watchfiles.Change, changed: str) -> bool:
        try:
            parts = PurePath(changed).relative_to(git_dir).parts
        except ValueError:
            return False
        if not parts or parts[-1].endswith(".lock"):
            return False
        return parts[0] == "refs" or (len(parts) == 1 and parts[0] in _TOP_LEVEL_REFS)

    log.debug("watching %s for ref changes", git_dir)
    async for _changes in watchfiles.awatch(
        git_dir,
        watch_filter=ref_changed,
        debounce=debounce_ms,
        step=min(50, debounce_ms),
        stop_event=stop_event,
    ):
        yield
