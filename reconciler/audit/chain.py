"""Checking a chain of audit records: hashes, links, sequence numbers, ids.

:func:`verify_chain` takes records as they were found (each with where it was found) and
returns the first :class:`ChainBreak`, or None when the chain is intact:

- every record's ``hash`` recomputes from its other fields;
- each ``prev_hash`` is the previous record's ``hash`` (:data:`GENESIS_HASH` for seq 1);
- sequence numbers run from 1 with no gap and no repeat; no id appears twice;
- a record found in the note of a commit says that commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.audit.record import GENESIS_HASH, AuditRecord


@dataclass(frozen=True, slots=True)
class Located:
    """A record and the object whose note held it (None: not from a note)."""

    record: AuditRecord
    note_of: str | None = None


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first record at which the chain does not hold, and what is wrong with it."""

    seq: int
    id: str
    commit: str
    problem: str

    def __str__(self) -> str:
        return f"record seq {self.seq} (id {self.id}, commit {self.commit}): {self.problem}"


def verify_chain(found: Iterable[Located | AuditRecord]) -> ChainBreak | None:
    """The first break in the chain ``found`` makes, in seq order; None if it is intact."""
    items = sorted(
        (f if isinstance(f, Located) else Located(f) for f in found),
        key=lambda f: (f.record.seq, f.record.id),
    )
    seen: dict[str, int] = {}
    previous: AuditRecord | None = None
    for item in items:
        record = item.record
        problem = _problem(record, item.note_of, previous, seen)
        if problem is not None:
            return ChainBreak(record.seq, record.id, record.commit, problem)
        seen[record.id] = record.seq
        previous = record
    return None


def _problem(
    record: AuditRecord, note_of: str | None, previous: AuditRecord | None, seen: dict[str, int]
) -> str | None:
    expected_seq = 1 if previous is None else previous.seq + 1
    if previous is not None and record.seq == previous.seq:
        return f"seq {record.seq} appears twice (ids {previous.id} and {record.id})"
    if record.seq != expected_seq:
        missing = (
            f"seq {expected_seq}"
            if record.seq == expected_seq + 1
            else f"seqs {expected_seq}..{record.seq - 1}"
        )
        return f"{missing} missing before it (deleted record?)"
    if record.id in seen:
        return f"id already used by record seq {seen[record.id]}"
    if record.hash != record.compute_hash():
        return "hash does not match its content (record edited?)"
    expected_prev = GENESIS_HASH if previous is None else previous.hash
    if record.prev_hash != expected_prev:
        return (
            f"prev_hash {record.prev_hash[:12]}… is not the hash of the record before it "
            f"({expected_prev[:12]}…)"
        )
    if note_of is not None and note_of != record.commit:
        return f"found in the note of {note_of}, but the record is about {record.commit}"
    return None
