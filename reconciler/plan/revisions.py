"""Reading two revisions of a local map repo, parsing each distinct file once.

The plan reads commits of the repo at ``--repo`` directly (no mirror, no checkout): the
OpsMap files of each commit's tree (in the order the reconciler reads them), their blobs
in one ``git cat-file --batch``, and who added a request file. Head is parsed whole (it is
validated); of base, only the files whose content differs from head's are parsed, and the
others share head's parsed models, which also makes unchanged parts cheap to compare.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.git.errors import GitSourceError
from reconciler.git.runner import GitRunner, git_environment
from reconciler.git.tree import LS_TREE_ARGS, PROBE_ARGS, TreeEntry, opsmap_entries, probe_entry
from reconciler.model.common import CommitSha
from reconciler.repo.loader import Loaded, MapRepo, RepoFile, load_repo
from reconciler.rules.files import PathInfo, Probe


class PlanError(Exception):
    """A user's mistake or an unreadable repo: one line for the terminal, exit 2."""


@dataclass(frozen=True, slots=True)
class Revision:
    """A commit of the map repo, the ref it was named by, and its loaded content."""

    ref: str
    sha: CommitSha
    tree: tuple[TreeEntry, ...]
    repo: MapRepo


class LocalRepo:
    """Git commands on the repo at ``path`` (a working tree or a bare repo)."""

    def __init__(self, path: Path, *, timeout_s: float = 60) -> None:
        self.path = path
        self.timeout_s = timeout_s
        # the operator's checkout, maybe another user's (a CI container's workspace)
        self._runner = GitRunner(remote=str(path), timeout_s=timeout_s, safe_directories=[path])
        if not path.is_dir():
            raise PlanError(f"{path}: not a directory")
        try:
            status, out = self._runner.run(
                "-C",
                str(path.resolve()),
                "rev-parse",
                "--absolute-git-dir",
                git_dir=None,
                ok=(0, 128),
            )
        except GitSourceError as exc:
            raise PlanError(str(exc)) from exc
        if status != 0:
            raise PlanError(f"{path}: not a git repository")
        self.git_dir = Path(out.decode("utf-8", "surrogateescape").strip())

    def _run(self, *args: str, ok: tuple[int, ...] = (0,)) -> tuple[int, bytes]:
        try:
            return self._runner.run(*args, git_dir=self.git_dir, ok=ok)
        except GitSourceError as exc:
            raise PlanError(str(exc)) from exc

    def resolve(self, ref: str) -> CommitSha:
        """The commit ``ref`` names; :class:`PlanError` if it names none."""
        if not ref or ref.startswith("-") or "\n" in ref:
            raise PlanError(f"not a revision: {ref!r}")
        status, out = self._run(
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            f"{ref}^{{commit}}",
            ok=(0, 1, 128),
        )
        if status != 0:
            raise PlanError(
                f"{self.path}: unknown revision {ref!r} (no such branch, tag or commit)"
            )
        return CommitSha(out.decode().strip())

    def tree(self, sha: str) -> tuple[TreeEntry, ...]:
        """The OpsMap files of ``sha``'s tree, in the reconciler's reading order."""
        _, out = self._run(*LS_TREE_ARGS, sha, "--")
        return tuple(opsmap_entries(out))

    def probe(self, sha: str) -> Probe:
        """What a repo-relative path is in ``sha``'s tree (for :func:`check_repo`)."""

        def probe(path: str) -> PathInfo:
            _, out = self._run(*PROBE_ARGS, sha, "--", path)
            return probe_entry(out, path)

        return probe

    def blobs(self, shas: Iterable[str]) -> dict[str, bytes]:
        """The content of every blob, read by one ``git cat-file --batch``."""
        wanted = sorted(set(shas))
        if not wanted:
            return {}
        command = ["git", "--git-dir", str(self.git_dir), "cat-file", "--batch"]
        try:
            done = subprocess.run(
                command,
                input="".join(f"{sha}\n" for sha in wanted).encode(),
                capture_output=True,
                timeout=self.timeout_s,
                env=git_environment(),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PlanError(f"{self.path}: cannot read files: {exc}") from exc
        if done.returncode != 0:
            reason = done.stderr.decode("utf-8", "replace").strip()
            raise PlanError(f"{self.path}: git cat-file failed: {reason}")
        return _parse_batch(done.stdout, wanted)

    def added_by(self, path: str, *, base: str, head: str) -> str | None:
        """The author's email of the newest commit after ``base`` up to ``head`` adding ``path``.

        As the reconciler finds the requester: raw identities (no mailmap), renames read
        as additions.
        """
        _, out = self._run(
            "log", "--no-mailmap", "--no-renames", "--diff-filter=A", "-z", "--format=%ae",
            head, f"^{base}", "--", path,
        )  # fmt: skip
        email = out.decode("utf-8", "replace").split("\0")[0].strip()
        return email or None


def _parse_batch(out: bytes, wanted: Sequence[str]) -> dict[str, bytes]:
    """``<sha> blob <size>\\n<content>\\n`` for each blob, in the order asked."""
    found: dict[str, bytes] = {}
    pos = 0
    for sha in wanted:
        end = out.index(b"\n", pos)
        header = out[pos:end].decode("ascii", "replace").split()
        if len(header) != 3 or header[1] != "blob":
            raise PlanError(f"git cat-file: cannot read blob {sha}: {' '.join(header)}")
        size = int(header[2])
        found[sha] = out[end + 1 : end + 1 + size]
        pos = end + 1 + size + 1
    return found


def load_revisions(local: LocalRepo, base_ref: str, head_ref: str) -> tuple[Revision, Revision]:
    """Base and head, loaded; base shares head's models for every file they have in common."""
    base_sha, head_sha = local.resolve(base_ref), local.resolve(head_ref)
    base_tree, head_tree = local.tree(base_sha), local.tree(head_sha)
    head_blobs = {e.path: e.blob for e in head_tree}
    content = local.blobs([e.blob for e in head_tree] + [e.blob for e in base_tree])
    head = load_repo(_files(head_tree, content), parallel=True)
    differs = [
        e for e in base_tree if head_blobs.get(e.path) != e.blob or e.path in head.broken_files
    ]
    own = load_repo(_files(differs, content), parallel=True)
    base = _compose(base_tree, {e.path for e in differs}, own, head)
    return (
        Revision(base_ref, base_sha, base_tree, base),
        Revision(head_ref, head_sha, head_tree, head),
    )


def _files(entries: Iterable[TreeEntry], content: dict[str, bytes]) -> list[RepoFile]:
    return [
        RepoFile(e.path, e.kind, _reader(content, e.blob), e.size, e.path, e.refused)
        for e in entries
    ]


def _reader(content: dict[str, bytes], blob: str) -> Callable[[], bytes]:
    return lambda: content[blob]


def _compose(
    tree: Sequence[TreeEntry], own_paths: set[str], own: MapRepo, head: MapRepo
) -> MapRepo:
    """The repo ``load_repo`` would make of ``tree``: ``own``'s files, and head's for the rest."""
    own_loaded, head_loaded = _by_path(own), _by_path(head)
    repo = MapRepo(
        findings=list(own.findings),
        broken_files=set(own.broken_files),
        unloaded_maps=set(own.unloaded_maps),
    )
    for entry in tree:
        item = (own_loaded if entry.path in own_paths else head_loaded).get(entry.path)
        if item is None:
            continue
        if entry.kind == "map":
            repo.maps.append(item)
        elif entry.kind == "policy":
            repo.policies.append(item)
        elif entry.kind == "inventory":
            repo.inventories.append(item)
        elif entry.kind == "request":
            repo.requests.append(item)
        else:
            repo.settings = item
    return repo


def _by_path(repo: MapRepo) -> dict[str, Loaded[Any]]:
    items: list[Loaded[Any]] = [*repo.maps, *repo.policies, *repo.inventories, *repo.requests]
    if repo.settings is not None:
        items.append(repo.settings)
    return {item.doc.path: item for item in items}
