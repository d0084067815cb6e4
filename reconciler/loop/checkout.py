"""The checkout: the files of the applied revision that the inventory points at.

A host's ``known_hosts`` is a file of the map repo; asyncssh reads it from disk, so each
applied revision writes those files (and only those) under the state directory's
``checkout/`` folder. A pull request controls every name and byte: each name is checked
to be a plain relative path, and every write and unlink resolved to stay in the folder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentless.safefile import MAX_KNOWN_HOSTS_BYTES, relative_problem, shown_name
from reconciler.git.blobs import BlobTooLarge
from reconciler.repo.loader import MapRepo

log = logging.getLogger(__name__)

ReadFile = Callable[[str, str], "bytes | None"]
"""``read_file(sha, path)``: a file's bytes at a revision, None when it is not a file
(:class:`~reconciler.git.blobs.BlobTooLarge` over the repo's file size cap)."""


def materialize(checkout: Path | None, sha: str, repo: MapRepo, read_file: ReadFile) -> None:
    """Write the files ``repo``'s inventory refers to (``known_hosts``) to ``checkout``.

    Only inside the checkout folder of the state dir: every name is checked to be a
    plain relative path, and every write and unlink resolved to stay in that folder.
    """
    if checkout is None:
        return
    checkout.mkdir(parents=True, exist_ok=True)
    root = checkout.resolve()
    for relative in sorted({h.known_hosts for h in repo.hosts if h.known_hosts}):
        problem = relative_problem(relative)
        if problem is not None:
            log.warning(
                "revision %s: known_hosts %s %s: not written",
                sha[:12],
                shown_name(relative),
                problem,
            )
            continue
        target = root / relative
        try:
            content = read_file(sha, relative)
        except BlobTooLarge:
            content = None
        if content is None or len(content) > MAX_KNOWN_HOSTS_BYTES:
            log.warning(
                "revision %s: known_hosts %s is not a file of the repo (or too large)",
                sha[:12],
                shown_name(relative),
            )
            if _inside(root, target):
                _quietly(target.unlink, missing_ok=True)
            continue
        if not _inside(root, target) or not _make_parent(root, target):
            log.warning(
                "revision %s: known_hosts %s leads out of %s: not written",
                sha[:12],
                shown_name(relative),
                root,
            )
            continue
        _quietly(_write_new, target, content)


def _inside(root: Path, target: Path) -> bool:
    """Whether writing or unlinking ``target`` acts inside ``root``.

    Its nearest existing folder, resolved, must be in ``root`` (a symlinked folder out is
    not). The name itself may be a symlink: replacing or unlinking one acts on the link.
    """
    if target.name in ("", ".", ".."):
        return False
    folder = target.parent
    while folder != root and not os.path.lexists(folder):
        folder = folder.parent
    try:
        return folder.resolve(strict=True).is_relative_to(root)
    except OSError:
        return False


def _write_new(target: Path, content: bytes) -> None:
    """Write ``content`` beside ``target`` (O_EXCL: never through a planted link), rename."""
    scratch = target.with_name(f".{target.name}.new")
    scratch.unlink(missing_ok=True)
    with open(scratch, "xb") as sink:
        sink.write(content)
    scratch.replace(target)


def _quietly(operation: Callable[..., None], *args: Any, **kw: Any) -> None:
    """Run a file operation of the checkout; a failure is logged, never raised."""
    try:
        operation(*args, **kw)
    except OSError as exc:
        log.warning(
            "checkout: %s failed: %s", getattr(operation, "__name__", "write"), exc.strerror
        )


def _make_parent(root: Path, target: Path) -> bool:
    """Create ``target``'s folders (known to lead nowhere out); False when that fails."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("cannot create %s: %s", target.parent, exc.strerror)
        return False
    return _inside(root, target)
