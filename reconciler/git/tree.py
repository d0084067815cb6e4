"""The OpsMap files of a commit's tree, from ``git ls-tree -r -z -l`` output."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from reconciler.repo.loader import FOLDER_KINDS, SETTINGS_FILE, SYMLINK_REFUSAL, Kind, kind_of
from reconciler.rules.files import PathInfo

LS_TREE_ARGS = ("ls-tree", "-r", "-z", "--full-tree", "-l")
"""Arguments of the listing :func:`opsmap_entries` reads (then the commit, then ``--``)."""
_BLOB_MODES = {"100644", "100755"}
_LINK_MODE = "120000"
_FOLDER_ORDER = {folder: index for index, folder in enumerate(FOLDER_KINDS, start=1)}


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One OpsMap file of a commit: its path, what it holds, its blob."""

    path: str
    kind: Kind
    blob: str
    size: int
    refused: tuple[str, str] | None = None
    """Set for a symlink at an OpsMap place: a finding, never read (see ``read_tree``)."""


def opsmap_entries(listing: bytes) -> list[TreeEntry]:
    """The OpsMap files of a listing, in :func:`reconciler.repo.loader.read_tree`'s order.

    A revision is the content of its own tree: a symlink at an OpsMap place (the settings
    file, a top-level folder, anything below one) is an entry with ``refused`` set, as a
    working tree's is; submodules are left out.
    """
    entries = []
    for entry in listing.decode("utf-8", "surrogateescape").split("\0"):
        meta, tab, path = entry.partition("\t")
        if not tab:
            continue
        mode, kind, blob, size = meta.split()
        file_kind = kind_of(path)
        if mode == _LINK_MODE:
            top = PurePosixPath(path).parts[0]
            link_kind = file_kind or FOLDER_KINDS.get(top)
            if link_kind is not None:
                entries.append(TreeEntry(path, link_kind, blob, 0, SYMLINK_REFUSAL))
            continue
        if file_kind is None or kind != "blob" or mode not in _BLOB_MODES:
            continue
        entries.append(TreeEntry(path, file_kind, blob, int(size)))
    return sorted(entries, key=lambda e: tree_order(e.path))


def tree_order(path: str) -> tuple[object, ...]:
    """Sort key of ``read_tree``: settings, then folders in order, files before subfolders."""
    if path in (SETTINGS_FILE, "opsmap.yml"):
        return (0, path)
    *folders, name = PurePosixPath(path).parts
    if not folders:  # a top-level folder that is a link
        return (_FOLDER_ORDER.get(name, 99),)
    return (_FOLDER_ORDER.get(folders[0], 99), *((1, d) for d in folders[1:]), (0, name))


PROBE_ARGS = ("ls-tree", "-z", "-l", "--full-tree")
"""Arguments of the listing :func:`probe_entry` reads (then the commit, ``--``, the path)."""
_SYMLINK_MODE = "120000"


def probe_entry(listing: bytes, path: str) -> PathInfo:
    """What ``path`` is in a commit, from ``git ls-tree -z -l --full-tree COMMIT -- PATH``.

    A symlink is mode 120000; a path under a symlink (or absent) lists nothing.
    """
    for entry in listing.decode("utf-8", "surrogateescape").split("\0"):
        meta, tab, listed = entry.partition("\t")
        if not tab or listed != path:
            continue
        mode, kind, _blob, size = meta.split()
        if mode == _SYMLINK_MODE:
            return PathInfo("symlink")
        if kind == "tree":
            return PathInfo("folder")
        if kind == "blob" and mode in _BLOB_MODES:
            return PathInfo("file", int(size))
        return PathInfo("other")
    return PathInfo("missing")
