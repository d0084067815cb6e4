"""Reading commits from a mirror: who wrote them, what they merged, which requests they added.

Identities are read raw (``%an``/``%ae``, no mailmap): a mailmap in the repo is a file any
PR can edit, so it must not rename the people that policies are checked against.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from reconciler.model.common import CommitSha
from reconciler.repo.loader import kind_of

_FIELDS = ("%H", "%P", "%an", "%ae", "%at", "%cn", "%ce", "%ct", "%B")
_FORMAT = "--format=" + "%x00".join(_FIELDS)
# The same output everywhere, whatever the user's config says.
_LOG = ("log", "--no-show-signature", "--no-mailmap", "--no-color", "-z")

Run = Callable[..., tuple[int, bytes]]
"""Runs ``git ARGS`` in the mirror, returns (status, stdout): ``GitSource._run``."""


@dataclass(frozen=True, slots=True)
class Person:
    """A commit's author or committer, as recorded in the commit (not verified)."""

    name: str
    email: str


@dataclass(frozen=True, slots=True)
class Commit:
    """One commit: its parents, its people, its message and the request files it added.

    ``added_requests`` holds the ``requests/`` files present in this commit but not in its
    first parent (for a merge: what the merged branch brought in), repo-relative, sorted.
    """

    sha: CommitSha
    parents: tuple[CommitSha, ...]
    author: Person
    committer: Person
    authored_at: datetime
    committed_at: datetime
    message: str
    added_requests: tuple[str, ...] = ()

    @property
    def first_parent(self) -> CommitSha | None:
        return self.parents[0] if self.parents else None

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1


def read_commits(run: Run, revs: Sequence[str], *, first_parent: bool = False) -> list[Commit]:
    """The commits ``git log REVS`` lists, oldest first, without their added requests."""
    options = ("--first-parent",) if first_parent else ()
    _, out = run(*_LOG, "--reverse", *options, _FORMAT, *revs, "--")
    return parse_commits(out)


def read_commit(run: Run, sha: str) -> Commit:
    """One commit, without its added requests."""
    _, out = run(*_LOG, "--no-walk", _FORMAT, sha, "--")
    (commit,) = parse_commits(out)
    return commit


def parse_commits(out: bytes) -> list[Commit]:
    """Parse ``git log -z`` output in :data:`_FORMAT` (fields and commits end with NUL)."""
    tokens = out.decode("utf-8", "replace").split("\0")
    if tokens and tokens[-1] == "":
        tokens.pop()
    width = len(_FIELDS)
    if len(tokens) % width:
        raise ValueError(f"git log printed {len(tokens)} fields, not a multiple of {width}")
    commits = []
    for start in range(0, len(tokens), width):
        sha, parents, an, ae, at, cn, ce, ct, message = tokens[start : start + width]
        commits.append(
            Commit(
                sha=CommitSha(sha.strip()),
                parents=tuple(CommitSha(p) for p in parents.split()),
                author=Person(an, ae),
                committer=Person(cn, ce),
                authored_at=datetime.fromtimestamp(int(at), tz=UTC),
                committed_at=datetime.fromtimestamp(int(ct), tz=UTC),
                message=message.removesuffix("\n"),
            )
        )
    return commits


def added_requests(run: Run, revs: Sequence[str]) -> dict[CommitSha, tuple[str, ...]]:
    """For each first-parent commit of REVS that added request files: those files.

    One ``git log`` for the whole range: merges are diffed against their first parent, a
    renamed file counts as added (``--no-renames``), and no pathspec is given, since
    history simplification by path would change which parent of a merge is followed.
    """
    _, out = run(
        *_LOG,
        "--first-parent",
        "--diff-merges=first-parent",
        "--no-renames",
        "--diff-filter=A",
        "--name-status",
        "--format=%H",
        *revs,
        "--",
    )
    return parse_added(out)


def parse_added(out: bytes) -> dict[CommitSha, tuple[str, ...]]:
    """Parse ``git log -z --name-status --format=%H``: a SHA, then (status, path) pairs.

    A path is always read as the second of a pair, so no file name can pass for a SHA.
    """
    tokens = _decode(out).split("\0")
    found: dict[CommitSha, list[str]] = {}
    current: list[str] = []
    index = 0
    while index < len(tokens):
        field = tokens[index].lstrip("\n")
        if field == "A" and index + 1 < len(tokens):
            path = tokens[index + 1]
            if kind_of(path) == "request":
                current.append(path)
            index += 2
            continue
        if field:
            current = found.setdefault(CommitSha(field), [])
        index += 1
    return {sha: tuple(sorted(paths)) for sha, paths in found.items() if paths}


def _decode(out: bytes) -> str:
    # Paths are bytes in git; surrogateescape lets an odd name go back to git unchanged.
    return out.decode("utf-8", "surrogateescape")
