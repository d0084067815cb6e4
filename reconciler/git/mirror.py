"""Following the tracked branch of a map repo through a mirror of our own.

:class:`GitSource` keeps a bare mirror of one branch under its ``cache_dir`` (the user's
checkout is never touched), asks the remote for the branch head before fetching so an
unchanged remote costs one ``ls-remote``, and reads commits from the mirror without a
checkout: the OpsMap files of a tree (:meth:`GitSource.files_at`), the first-parent
history between two heads with the request files each commit added, and what the commits
a merge brought in did to request files, and who signed them.

Blobs are read by one long-lived ``git cat-file`` per mirror
(:class:`~reconciler.git.blobs.BlobReader`), ended by :meth:`GitSource.close`.
It is synchronous (git runs as a child process); the reconciler calls it through
``asyncio.to_thread``. A lock makes every call safe from any thread, one at a time. Every
git command has a timeout, never prompts, and for SSH never accepts an unknown host key.

Errors (see :mod:`reconciler.git.errors`): :class:`GitSourceError`, and under it
:class:`RemoteUnreachable` (retry at the next poll) and :class:`UnknownCommit`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from reconciler.git.attribution import MergedHistory
from reconciler.git.blobs import BlobReader, BlobTooLarge
from reconciler.git.changes import AllowedSigner, read_blobs, read_changes
from reconciler.git.errors import GitSourceError, RemoteUnreachable, UnknownCommit, mask_secrets
from reconciler.git.history import Commit, Person, added_requests, read_commit, read_commits
from reconciler.git.runner import GitRunner, upload_pack_args
from reconciler.git.tree import LS_TREE_ARGS, PROBE_ARGS, opsmap_entries, probe_entry
from reconciler.git.watch import is_local, local_path, watch_local
from reconciler.model.common import CommitSha
from reconciler.model.runtime import GitSettings
from reconciler.model.vocabulary import COMMIT_SHA
from reconciler.repo.loader import RepoFile
from reconciler.repo.yamlparse import MAX_FILE_BYTES
from reconciler.rules.files import PathInfo, Probe

__all__ = [
    "BlobTooLarge",
    "Commit",
    "CommitSha",
    "FetchResult",
    "GitSource",
    "GitSourceError",
    "Person",
    "RemoteUnreachable",
    "UnknownCommit",
    "is_local",
    "watch_local",
]

log = logging.getLogger(__name__)

DEFAULT_FALLBACKS = ("main", "master")
"""Followed, in this order, when the remote's ``HEAD`` names no branch that exists."""
_BRANCH = re.compile(r"(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]+(?<![./])(?<!\.lock)")


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The branch head after a fetch; ``forced`` when it is not a descendant of the last."""

    head: CommitSha
    changed: bool
    forced: bool


class GitSource:
    """One branch of one remote (URL or local path), mirrored under ``cache_dir``."""

    def __init__(
        self,
        url: str,
        *,
        branch: str | None = None,
        cache_dir: Path,
        timeout_s: float = GitSettings().timeout_s,
    ) -> None:
        """``branch`` None: the remote's default branch (what its ``HEAD`` names, as
        ``git clone`` and Argo CD take it), looked up at every :meth:`remote_head`."""
        if url.startswith("-"):
            raise ValueError(f"not a repository URL: {url!r}")
        if branch is not None and not _BRANCH.fullmatch(branch):
            raise ValueError(f"not a branch name: {branch!r}")
        path = local_path(url)
        self.url = str(path.resolve()) if path is not None and "://" not in url else url
        self.follows_default = branch is None
        self.branch = branch or DEFAULT_FALLBACKS[0]
        """The branch followed (the remote's default once looked up, when not given)."""
        self.ref = f"refs/heads/{self.branch}"
        self.display = mask_secrets(self.url)
        tracked = "HEAD" if branch is None else branch
        digest = hashlib.sha256(f"{self.display}\n{tracked}".encode()).hexdigest()[:16]
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", PurePosixPath(self.display).name)
        self.mirror = Path(cache_dir) / f"{name.removesuffix('.git') or 'repo'}-{digest}.git"
        self._runner = GitRunner(remote=self.display, timeout_s=timeout_s)
        # a local repo of another user (a service following /srv/maps): safe, for git
        self._upload_pack = upload_pack_args(path)
        self._blobs = BlobReader(
            self.mirror, remote=self.display, timeout_s=timeout_s, max_bytes=MAX_FILE_BYTES
        )
        self._lock = threading.RLock()
        self._announced = False

    def __repr__(self) -> str:
        return f"GitSource({self.display!r}, branch={self.branch!r})"

    def remote_head(self) -> CommitSha | None:
        """The branch head on the remote (one ``ls-remote``); None if it has no such branch.

        Following the default branch, the same ``ls-remote`` asks where ``HEAD`` points
        (``--symref``), and the branch followed changes when the remote's default does."""
        if self.follows_default:
            return self._default_head()
        with self._lock:
            _, out = self._run(
                "ls-remote", *self._upload_pack, "--", self.url, self.ref,
                in_mirror=False, network=True,
            )  # fmt: skip
        for line in out.decode("ascii", "replace").splitlines():
            sha, _, ref = line.partition("\t")
            if ref == self.ref:
                return CommitSha(sha)
        return None

    def _default_head(self) -> CommitSha | None:
        """The head of the branch ``HEAD`` names on the remote; where ``HEAD`` names no
        branch that exists (a bare repo made with another default), the first of
        :data:`DEFAULT_FALLBACKS` that exists."""
        fallbacks = [f"refs/heads/{name}" for name in DEFAULT_FALLBACKS]
        with self._lock:
            _, out = self._run(
                "ls-remote", "--symref", *self._upload_pack, "--", self.url, "HEAD", *fallbacks,
                in_mirror=False, network=True,
            )  # fmt: skip
        heads: dict[str, str] = {}
        named: str | None = None
        for line in out.decode("utf-8", "replace").splitlines():
            left, _, ref = line.partition("\t")
            if left.startswith("ref: ") and ref == "HEAD":
                named = left.removeprefix("ref: ")
            elif COMMIT_SHA.fullmatch(left):
                heads[ref] = left
        if named is not None and "HEAD" in heads:
            heads[named] = heads["HEAD"]  # HEAD's commit is its branch's
        candidates = ([named] if named is not None else []) + fallbacks
        for ref in candidates:
            branch = ref.removeprefix("refs/heads/")
            if ref in heads and ref.startswith("refs/heads/") and _BRANCH.fullmatch(branch):
                if branch != self.branch or not self._announced:
                    log.info("%s: following branch %s (the remote's default)", self, branch)
                    self._announced = True
                self.branch, self.ref = branch, ref
                return CommitSha(heads[ref])
        return None

    def local_head(self) -> CommitSha | None:
        """The branch head in the mirror (as of the last fetch); None before the first."""
        with self._lock:
            if not self._exists():
                return None
            status, out = self._run(
                "rev-parse", "--verify", "--quiet", f"{self.ref}^{{commit}}", ok=(0, 1)
            )
        return CommitSha(out.decode().strip()) if status == 0 else None

    def fetch(self) -> FetchResult:
        """Bring the mirror to the remote's head; fetch only if the heads differ."""
        with self._lock:
            self._ensure_mirror()
            remote = self.remote_head()
            if remote is None:
                missing = (
                    "no default branch on the remote (its HEAD names no branch, and it has "
                    "no main or master): give --branch"
                    if self.follows_default
                    else f"no branch {self.branch!r} on the remote"
                )
                raise RemoteUnreachable(self.display, missing)
            old = self.local_head()
            if remote == old:
                return FetchResult(head=old, changed=False, forced=False)
            refspec = f"+{self.ref}:{self.ref}"
            self._run(
                "fetch", "--quiet", "--no-tags", *self._upload_pack, "--", self.url, refspec,
                network=True,
            )  # fmt: skip
            new = self.local_head()
            if new is None:
                raise GitSourceError(self.display, f"fetch left no {self.ref} in the mirror")
            forced = old is not None and new != old and not self.is_ancestor(old, new)
            if forced:
                log.warning("%s: branch %s was force-pushed: %s -> %s", self, self.branch, old, new)
            return FetchResult(head=new, changed=new != old, forced=forced)

    def is_ancestor(self, old: str, new: str) -> bool:
        """Whether ``old`` is ``new`` or one of its ancestors."""
        with self._lock:
            old_sha, new_sha = self._commit(old), self._commit(new)
            status, _ = self._run("merge-base", "--is-ancestor", old_sha, new_sha, ok=(0, 1))
        return status == 0

    def files_at(self, sha: str) -> list[RepoFile]:
        """The OpsMap files of ``sha``'s tree, in :func:`reconciler.repo.loader.read_tree`'s order.

        Blobs are read when a file's ``read`` is called. A symlink is an entry refused
        unread (a finding); submodules are left out.
        """
        with self._lock:
            commit = self._commit(sha)
            _, out = self._run(*LS_TREE_ARGS, commit, "--")
        return [
            RepoFile(e.path, e.kind, self._reader(e.blob), e.size, e.path, e.refused)
            for e in opsmap_entries(out)
        ]

    def probe_at(self, sha: str) -> Probe:
        """What a repo-relative path is in ``sha``'s tree (a file, a symlink…), for the rules."""
        with self._lock:
            commit = self._commit(sha)

        def probe(path: str) -> PathInfo:
            with self._lock:
                _, out = self._run(*PROBE_ARGS, commit, "--", path)
            return probe_entry(out, path)

        return probe

    def read_file(self, sha: str, path: str) -> bytes | None:
        """The content of ``path`` (repo-relative) at ``sha``; None if it is not a file there.

        Raises :class:`BlobTooLarge` for a file over the repo's file size cap
        (:data:`~reconciler.repo.yamlparse.MAX_FILE_BYTES`), unread.
        """
        clean = PurePosixPath(path)
        if clean.is_absolute() or ".." in clean.parts or not clean.parts:
            return None
        with self._lock:
            commit = self._commit(sha)
        if "\n" in str(clean) or "\0" in str(clean):  # not one line: a process of its own
            with self._lock:
                status, out = self._run("cat-file", "blob", f"{commit}:{clean}", ok=(0, 128))
            if status == 0 and len(out) > MAX_FILE_BYTES:
                raise BlobTooLarge(self.display, f"{commit}:{clean}", len(out), MAX_FILE_BYTES)
            return out if status == 0 else None
        return self._blobs.read(f"{commit}:{clean}")

    def close(self) -> None:
        """End the git process this source keeps for reading blobs (a later read restarts it)."""
        self._blobs.close()

    def first_parent_path(self, old: str | None, new: str) -> list[Commit]:
        """The commits of ``new``'s first-parent chain after ``old``, oldest first.

        Each carries the request files it added. With ``old`` None, the whole chain. If
        ``old`` is not an ancestor of ``new`` (a force-push), the chain after their merge
        base (the whole chain if they share no history).
        """
        with self._lock:
            new_sha = self._commit(new)
            revs: list[str] = [new_sha]
            if old is not None:
                base = self._merge_base(self._commit(old), new_sha)
                revs += [f"^{base}"] if base else []
            commits = read_commits(self._run, revs, first_parent=True)
            added = added_requests(self._run, revs)
        return [replace(c, added_requests=added.get(c.sha, ())) for c in commits]

    def merged_history(self, sha: str, *, signers: Sequence[AllowedSigner] | None) -> MergedHistory:
        """What commit ``sha`` brought in (reachable from it, not from its first parent, it
        included) did to request files; see :func:`reconciler.git.attribution.attribute`.

        Three git commands, whatever the number of requests and commits: the changes (with
        signatures verified against ``signers`` unless None), the people, the blobs at ``sha``.
        """
        with self._lock:
            commit = read_commit(self._run, self._commit(sha))
            first = commit.first_parent
            revs = [commit.sha, f"^{first}"] if first else [commit.sha]
            try:
                changes = read_changes(self._run, revs, signers=signers)
                people = {c.sha: c for c in read_commits(self._run, revs)}
            except ValueError as exc:
                raise GitSourceError(self.display, f"unreadable history of {sha}: {exc}") from exc
            blobs = read_blobs(self._run, commit.sha)
        return MergedHistory(commit, tuple(changes), blobs, people)

    def _merge_base(self, old: CommitSha, new: CommitSha) -> CommitSha | None:
        status, out = self._run("merge-base", old, new, ok=(0, 1))
        return CommitSha(out.decode().strip()) if status == 0 else None

    def _commit(self, rev: str) -> CommitSha:
        """``rev`` (a full SHA) checked to name a commit of the mirror."""
        if not COMMIT_SHA.fullmatch(rev):
            raise UnknownCommit(self.display, f"not a full commit SHA: {rev[:80]!r}")
        if not self._exists():
            raise UnknownCommit(self.display, f"{rev}: nothing fetched yet")
        status, _ = self._run("cat-file", "-e", f"{rev}^{{commit}}", ok=(0, 1, 128))
        if status != 0:
            raise UnknownCommit(self.display, f"{rev}: no such commit in the mirror")
        return CommitSha(rev)

    def _reader(self, blob: str) -> Callable[[], bytes]:
        def read() -> bytes:
            content = self._blobs.read(blob)
            if content is None:
                raise GitSourceError(self.display, f"blob {blob} is not in the mirror")
            return content

        return read

    def _exists(self) -> bool:
        return (self.mirror / "HEAD").is_file()

    def _ensure_mirror(self) -> None:
        """Create the bare mirror (atomically, by renaming a finished one into place)."""
        if self._exists():
            return
        self.mirror.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.mirror.with_name(f"{self.mirror.name}.new-{os.getpid()}")
        shutil.rmtree(scratch, ignore_errors=True)
        self._run("init", "--quiet", "--bare", "--", str(scratch), in_mirror=False)
        # No auto gc: a force-pushed head stays readable, for the history after it.
        config = str(scratch / "config")
        for key, value in (("gc.auto", "0"), ("core.logAllRefUpdates", "always")):
            self._run("config", "--file", config, key, value, in_mirror=False)
        try:
            scratch.rename(self.mirror)
        except OSError:
            shutil.rmtree(scratch, ignore_errors=True)
            if not self._exists():
                raise
        log.info("%s: mirror created at %s", self, self.mirror)

    def _run(
        self,
        *args: str,
        in_mirror: bool = True,
        ok: tuple[int, ...] = (0,),
        network: bool = False,
        stderr_too: bool = False,
    ) -> tuple[int, bytes]:
        """Every git command of this class goes through here (tests count them)."""
        git_dir = self.mirror if in_mirror else None
        return self._runner.run(
            *args, git_dir=git_dir, ok=ok, network=network, stderr_too=stderr_too
        )
