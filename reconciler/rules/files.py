"""Rules on the files an inventory names: ``known_hosts`` in the repo, ``identity_file`` keys.

``known_hosts`` is a repo-relative path to a regular file of the repo: no absolute path,
no ``..``, no symlink (at any depth), at most :data:`MAX_KNOWN_HOSTS_BYTES`. Whether it is
a regular file needs the tree the repo was read from: a :data:`Probe` tells, for a working
tree (``lstat`` of every part, :func:`working_tree_probe`) or a commit (the modes of
``git ls-tree``, :func:`reconciler.git.tree.probe_entry`). Without a probe only the
spelling is checked.

``identity_file`` names a key on the reconciler's own host, which the repo may only choose
among the keys the operator allowed: a plain relative name inside the operator's key
directory (``--ssh-key-dir``), which only the reconciler knows, or ``~/.ssh/id_*`` (one of
the operator's default keys); here only the spelling.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from agentless.inventory import HostEntry, InventoryDefaults, InventoryFile
from agentless.safefile import (
    MAX_KNOWN_HOSTS_BYTES,
    default_key_name,
    relative_problem,
    shown_name,
)
from reconciler.findings import Finding, Severity
from reconciler.repo.loader import Loaded, MapRepo
from reconciler.repo.yamlparse import YamlPath

PathKind = Literal["file", "symlink", "folder", "other", "missing"]


@dataclass(frozen=True, slots=True)
class PathInfo:
    """What a repo-relative path is in a tree: its kind, and its size when a file."""

    kind: PathKind
    size: int = 0


Probe = Callable[[str], PathInfo]
"""Tells what a (well-spelled) repo-relative path is in the tree a repo was read from."""


def working_tree_probe(root: Path) -> Probe:
    """A :data:`Probe` of a working tree: ``lstat`` of every part, no symlink followed."""

    def probe(relative: str) -> PathInfo:
        current = root
        parts = PurePosixPath(relative).parts
        for index, part in enumerate(parts):
            current = current / part
            try:
                mode = os.lstat(current)
            except OSError:
                return PathInfo("missing")
            last = index == len(parts) - 1
            if stat.S_ISLNK(mode.st_mode):
                return PathInfo("symlink")
            if not last and not stat.S_ISDIR(mode.st_mode):
                return PathInfo("missing")
            if last:
                if stat.S_ISREG(mode.st_mode):
                    return PathInfo("file", mode.st_size)
                return PathInfo("folder" if stat.S_ISDIR(mode.st_mode) else "other")
        return PathInfo("missing")

    return probe


def inventory_files(repo: MapRepo, probe: Probe | None = None) -> Iterator[Finding]:
    """``known_hosts`` and ``identity_file`` of every host and defaults, as the module says."""
    for loaded in repo.inventories:
        for path, entry in _entries(loaded):
            if entry.known_hosts is not None:
                reason = _known_hosts_problem(entry.known_hosts, probe)
                if reason is not None:
                    yield Finding(
                        loaded.doc.locate((*path, "known_hosts")),
                        Severity.ERROR,
                        "unsafe-known-hosts",
                        f"known_hosts {shown_name(entry.known_hosts)} {reason}",
                    )
            if entry.identity_file is not None and not default_key_name(entry.identity_file):
                reason = relative_problem(entry.identity_file)
                if reason is not None:
                    yield Finding(
                        loaded.doc.locate((*path, "identity_file")),
                        Severity.ERROR,
                        "unsafe-identity-file",
                        f"identity_file {shown_name(entry.identity_file)} {reason}; it names"
                        " a key in the operator's key directory (opsmap run --ssh-key-dir)",
                    )


def _entries(
    loaded: Loaded[InventoryFile],
) -> Iterator[tuple[YamlPath, InventoryDefaults | HostEntry]]:
    yield ("defaults",), loaded.model.defaults
    for index, host in enumerate(loaded.model.hosts):
        yield ("hosts", index), host


def _known_hosts_problem(name: str, probe: Probe | None) -> str | None:
    spelled = relative_problem(name)
    if spelled is not None:
        return f"{spelled} (a known_hosts file is a path inside the repo)"
    if probe is None:
        return None
    found = probe(name)
    if found.kind == "missing":
        return "is not a file of the repo"
    if found.kind == "symlink":
        return "is a symlink (or has one on its path): symlinks are never followed"
    if found.kind != "file":
        what = "a folder" if found.kind == "folder" else "not a file"
        return f"is not a regular file (it is {what})"
    if found.size > MAX_KNOWN_HOSTS_BYTES:
        return f"is {found.size} bytes, over the {MAX_KNOWN_HOSTS_BYTES}-byte limit"
    return None
