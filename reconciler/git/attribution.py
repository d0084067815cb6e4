"""Who asked for a request and who approved it, from a merge's history: pure.

Without ``require_signed_commits`` identities are *claims*: the requester is the author
of the commit that added the file, the approver the author of the merge, as their commits
say (anyone can write any name there), and both are marked unverified.

With it, a request's content is attributed only to verified allowed signers: every commit
of the merged range that changed the file (a merge counts when it made content of its
own, see :mod:`reconciler.git.changes`) must carry a good signature by a key that
``policies/`` lists, made by the person the commit names (its author or committer), and
the requester is the signer of the last one, the commit that wrote the content that is
merged. The merge itself must be signed the same way: its signer is the approver. Any
other change denies the request, naming the commit and the rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.git.changes import AllowedSigner, Change, Signature
from reconciler.git.history import Commit, Person
from reconciler.model.common import CommitSha

RULE = "require_signed_commits"
_STATUS = {
    "N": "is not signed",
    "B": "has a bad signature",
    "U": "is signed by a key that no signer in policies/ has",
    "E": "has a signature that cannot be checked (only SSH signatures are supported)",
    "X": "has an expired signature",
    "Y": "is signed by an expired key",
    "R": "is signed by a revoked key",
}


@dataclass(frozen=True, slots=True)
class MergedHistory:
    """What a first-parent commit brought in: itself, the commits of its range that
    changed request files (newest first), the request blobs it holds, and people."""

    merge: Commit
    changes: tuple[Change, ...]
    blobs: Mapping[str, str]
    people: Mapping[CommitSha, Commit]
    touching: Mapping[str, tuple[Change, ...]] = field(init=False)
    """The changes of each path, newest first: indexed once, so that attributing every
    request of a merge stays linear in the size of its history."""

    def __post_init__(self) -> None:
        index: dict[str, list[Change]] = {}
        for change in self.changes:
            for path in change.files:
                index.setdefault(path, []).append(change)
        object.__setattr__(self, "touching", {p: tuple(c) for p, c in index.items()})

    @property
    def merge_signature(self) -> Signature | None:
        """The merge's own signature: it is listed first when it is among the changes."""
        first = self.changes[0] if self.changes else None
        return first.signature if first is not None and first.sha == self.merge.sha else None


@dataclass(frozen=True, slots=True)
class Identity:
    """A person as one commit shows them: a claim, or vouched for by a signature."""

    identity: str
    """Who the policies are asked about: the signer when verified, else the author's email."""
    verified: bool
    commit: CommitSha
    author: Person | None
    committer: Person | None
    signer: str | None = None
    key: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "verified": self.verified,
            "commit": self.commit,
            "author": _person(self.author),
            "committer": _person(self.committer),
            "signer": self.signer,
            "key": self.key,
        }


@dataclass(frozen=True, slots=True)
class Attribution:
    requester: Identity | None
    approver: Identity | None
    problem: str | None = None
    """Why these identities cannot be trusted (require_signed_commits): denies the request."""

    @property
    def verified(self) -> bool:
        people = [p for p in (self.requester, self.approver) if p is not None]
        return bool(people) and all(p.verified for p in people)

    def to_json(self) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "requester": self.requester.to_json() if self.requester else None,
            "approver": self.approver.to_json() if self.approver else None,
        }


def attribute(
    history: MergedHistory, path: str, *, signers: Sequence[AllowedSigner] | None
) -> Attribution:
    """The requester and approver of the request file ``path`` that ``history`` added.

    ``signers`` is None when signatures are not required (identities are claims).
    """
    merge = history.merge
    touching = history.touching.get(path, ())
    claimed = _claim(history, _adder(history, touching, path))
    if signers is None:
        return Attribution(claimed, _approver(history))
    final = history.blobs.get(path)
    writer = next((c for c in touching if c.files[path].blob == final), None)
    for change in touching:
        problem = _unvouched(change.sha, change.signature, history, signers)
        if problem is not None:
            return _denied(
                history,
                claimed,
                f"{RULE}: commit {change.sha[:12]} changed {path} and {problem}; every change "
                "to a request must be signed by an allowed signer",
            )
    if writer is None:
        return _denied(
            history,
            claimed,
            f"{RULE}: no commit of the merge wrote {path} (its content is older than the "
            "merge's first parent), so no signer asked for it",
        )
    requester = _vouched(writer.sha, writer.signature, history)
    approver = None
    if merge.is_merge:
        merge_signature = next((c.signature for c in history.changes if c.sha == merge.sha), None)
        problem = (
            _unvouched(merge.sha, merge_signature, history, signers)
            if merge_signature is not None
            else "was not read"
        )
        if problem is not None:
            return _denied(
                history,
                requester,
                f"{RULE}: merge commit {merge.sha[:12]} {problem}; the approver must sign "
                "the merge",
            )
        assert merge_signature is not None
        approver = _vouched(merge.sha, merge_signature, history)
    return Attribution(requester, approver)


def _adder(history: MergedHistory, touching: Sequence[Change], path: str) -> CommitSha:
    """The newest commit that added ``path`` (not a merge), else the one that wrote it."""
    for change in touching:
        if not change.is_merge and change.files[path].status == "A":
            return change.sha
    final = history.blobs.get(path)
    for change in touching:
        if change.files[path].blob == final:
            return change.sha
    return history.merge.sha


def _claim(history: MergedHistory, sha: CommitSha) -> Identity | None:
    commit = history.people.get(sha)
    if commit is None:
        return None
    return Identity(commit.author.email, False, sha, commit.author, commit.committer)


def _approver(history: MergedHistory) -> Identity | None:
    return _claim(history, history.merge.sha) if history.merge.is_merge else None


def _denied(history: MergedHistory, requester: Identity | None, problem: str) -> Attribution:
    """Who the commits claim (for the record), and why the request is denied."""
    return Attribution(requester, _approver(history), problem)


def _unvouched(
    sha: CommitSha,
    signature: Signature | None,
    history: MergedHistory,
    signers: Sequence[AllowedSigner],
) -> str | None:
    """Why the signature on ``sha`` does not vouch for it; None when it does."""
    if signature is None:
        return "is not signed"
    if not signature.good:
        return _STATUS.get(signature.status, f"has a signature git rates {signature.status!r}")
    keys = {s.fingerprint for s in signers if s.usable and s.identity == signature.signer}
    if signature.key not in keys:
        return f"is signed by a key policies/ does not list for {signature.signer}"
    commit = history.people.get(sha)
    named = {p.email.lower() for p in (commit.author, commit.committer)} if commit else set()
    if signature.signer.lower() not in named:
        who = (
            f"author {commit.author.email} and committer {commit.committer.email}"
            if commit
            else "no one"
        )
        return f"is signed by {signature.signer} but names {who}"
    return None


def _vouched(sha: CommitSha, signature: Signature, history: MergedHistory) -> Identity:
    commit = history.people.get(sha)
    return Identity(
        signature.signer,
        True,
        sha,
        commit.author if commit else None,
        commit.committer if commit else None,
        signature.signer,
        signature.key,
    )


def _person(person: Person | None) -> str | None:
    return None if person is None else f"{person.name} <{person.email}>"
