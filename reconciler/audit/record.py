"""One audit record: what it holds, its canonical JSON, and the hash that chains it.

A record's ``hash`` is the hex sha256 of the canonical JSON (sorted keys, no spaces,
UTF-8, a lone surrogate as its ``\\uXXXX`` escape: :func:`canonical_json`) of every other
field, ``prev_hash`` included; the first record's ``prev_hash`` is :data:`GENESIS_HASH`.
Changing any field of any record therefore shows, either in its own hash or, if that was
recomputed too, in the next record's ``prev_hash``. Text without a lone surrogate hashes
as it always did, so chains written before still verify.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from typing import Any, Final

from reconciler.audit.errors import AuditFormatError
from reconciler.inert import for_json_text
from reconciler.model.vocabulary import COMMIT_SHA

ACTIONS: Final = frozenset(
    {
        "revision.applied",
        "revision.rejected",
        "request.authorized",
        "request.denied",
        "action.started",
        "action.succeeded",
        "action.failed",
        "action.unknown",
        "component.status_changed",
    }
)
"""Every value of :attr:`AuditRecord.action`."""

GENESIS_HASH: Final = "0" * 64
"""The ``prev_hash`` of the first record."""

FIELDS: Final = (
    "id",
    "timestamp",
    "action",
    "actor",
    "target",
    "details",
    "commit",
    "revision",
    "seq",
    "prev_hash",
    "hash",
)
"""The keys of a record's JSON, in the order a note line shows them."""

_HEX64 = re.compile(r"[0-9a-f]{64}")


_LONE_SURROGATES = re.compile("[\ud800-\udfff]")


def _escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def canonical_json(value: object) -> str:
    """The one JSON text of ``value`` that hashes are computed over: sorted keys, no
    spaces, characters as they are but a lone surrogate (a byte that was not UTF-8, read
    with ``surrogateescape``), which is its ``\\uXXXX`` escape, so the text is UTF-8."""
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return _LONE_SURROGATES.sub(_escaped, text)


def shown_json(value: object, **options: Any) -> str:
    """``value`` as JSON to write in a note or on a terminal: characters as they are, but
    lone surrogates and the controls that break a line or reorder it, escaped (JSON reads
    them back the same)."""
    return for_json_text(json.dumps(value, ensure_ascii=False, **options))


def json_object(value: dict[str, Any], what: str) -> dict[str, Any]:
    """A detached, JSON-only copy of ``value``; ValueError if it is not plain JSON. The
    copy is the value as JSON reads it back (a high surrogate followed by a low one is the
    one character they encode), so that a record read from a note hashes the same."""
    try:
        text = canonical_json(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"audit {what} is not plain JSON: {exc}") from exc
    copy = json.loads(text)
    if not isinstance(copy, dict):
        raise ValueError(f"audit {what} must be a JSON object")
    return copy


def _json_text(text: str) -> str:
    """``text`` as JSON reads it back (see :func:`json_object`)."""
    return str(json.loads(canonical_json(text)))


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """A decision or an outcome, attached to the commit it concerns.

    ``commit`` is the merge commit for a request, the revision for revision and
    component records; ``revision`` is the map revision applied when it was written.
    """

    seq: int
    id: str
    timestamp: str
    action: str
    actor: str
    target: dict[str, Any]
    details: dict[str, Any]
    commit: str
    revision: str | None
    prev_hash: str
    hash: str

    def content(self) -> dict[str, Any]:
        """Every field but ``hash``: what the hash is computed over."""
        return {name: getattr(self, name) for name in FIELDS if name != "hash"}

    def compute_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.content()).encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELDS}

    def to_line(self) -> str:
        """One line of JSON (no newline), fields in :data:`FIELDS` order: a note's line
        (:func:`shown_json`: valid UTF-8, no line break but its end)."""
        return shown_json(self.to_json(), separators=(",", ":"))

    @classmethod
    def create(
        cls,
        *,
        seq: int,
        id: str,
        timestamp: str,
        action: str,
        actor: str,
        target: dict[str, Any],
        details: dict[str, Any],
        commit: str,
        revision: str | None,
        prev_hash: str,
    ) -> AuditRecord:
        """A new record with its hash computed; ValueError for an unknown action or bad JSON."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        if not is_full_sha(commit):
            raise ValueError(f"audit commit {commit!r} is not a full SHA")
        if revision is not None and not is_full_sha(revision):
            raise ValueError(f"audit revision {revision!r} is not a full SHA")
        unhashed = cls(
            seq=seq,
            id=id,
            timestamp=timestamp,
            action=action,
            actor=_json_text(actor),
            target=json_object(target, "target"),
            details=json_object(details, "details"),
            commit=commit,
            revision=revision,
            prev_hash=prev_hash,
            hash="",
        )
        return replace(unhashed, hash=unhashed.compute_hash())

    @classmethod
    def from_json(cls, data: object) -> AuditRecord:
        """A record read back as it was written; :class:`AuditFormatError` if it is not one.

        The hash is *not* checked here (see :func:`reconciler.audit.chain.verify_chain`):
        a tampered record still reads, so that it can be named.
        """
        if not isinstance(data, dict):
            raise AuditFormatError("not a JSON object")
        keys = set(data)
        if keys != set(FIELDS):
            missing, extra = sorted(set(FIELDS) - keys), sorted(keys - set(FIELDS))
            parts = [f"missing {', '.join(missing)}"] if missing else []
            parts += [f"unexpected {', '.join(extra)}"] if extra else []
            raise AuditFormatError("; ".join(parts))
        seq = data["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise AuditFormatError(f"seq {seq!r} is not a positive integer")
        for name in ("id", "timestamp", "action", "actor", "commit", "prev_hash", "hash"):
            if not isinstance(data[name], str):
                raise AuditFormatError(f"{name} is not a string")
        for name in ("target", "details"):
            if not isinstance(data[name], dict):
                raise AuditFormatError(f"{name} is not an object")
        if data["revision"] is not None and not isinstance(data["revision"], str):
            raise AuditFormatError("revision is neither a string nor null")
        for name in ("prev_hash", "hash"):
            if not _HEX64.fullmatch(data[name]):
                raise AuditFormatError(f"{name} is not 64 hex digits")
        return cls(**{name: data[name] for name in FIELDS})

    @classmethod
    def from_line(cls, line: str) -> AuditRecord:
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise AuditFormatError(f"not JSON: {exc}") from exc
        return cls.from_json(data)


def is_full_sha(text: str) -> bool:
    return COMMIT_SHA.fullmatch(text) is not None
