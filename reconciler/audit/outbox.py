"""The audit outbox: every record is chained and committed to the state store, in order.

:class:`AuditLog` chains the records and keeps them in the state store's outbox (the
:class:`~reconciler.store.protocol.Outbox` protocol: the ``audit_records`` table of
:mod:`reconciler.store.sqlite.outbox` now), records numbered 1, 2, 3… with no gap.

A record that cannot be stored (disk full, I/O error, locked: a
:class:`~reconciler.store.writes.StateWriteError`) is kept in memory, in order, with its id
and timestamp fixed, and stored by :meth:`AuditLog.flush` (the delivery loop retries it
with backoff): never dropped, chained when it is stored, stored once by its id. A record
the store refuses (a :class:`~reconciler.store.protocol.StoreError`: a value it does not
take) is that record's error alone: a stand-in takes its place in the chain (what, when,
which commit, why, and the digest of what it held), and the records after it go on.

Records are delivered (as git notes) by someone else; :meth:`AuditLog.mark_delivered`
is called only after they were pushed. A lock serializes this class's own use of the
outbox, so that a call from a worker thread cannot interleave with one from the event
loop (the publisher gets records, not the store).

With an outbox that blocks (PostgreSQL: a round trip, :mod:`reconciler.store.calls`),
the log is ``deferred``: :meth:`AuditLog.append`, on the loop, only keeps the record, in
order, with its id and timestamp (the loop never waits on the database), and tells
:attr:`AuditLog.on_kept`; its owner stores what is kept by :meth:`AuditLog.flush` in a
worker thread, soon after (:class:`reconciler.server.operations.Operations`), and before
a request starts (:class:`reconciler.requests.processor.RequestProcessor`). The kept
records have a lock of their own, never held while the outbox is used, so an append on
the loop does not wait for a flush in a thread; flushes are one at a time, so records
are chained in the order they were appended.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from reconciler.audit.errors import AuditFormatError, AuditStoreError
from reconciler.audit.record import GENESIS_HASH, AuditRecord, canonical_json
from reconciler.clock import Clock, RealClock
from reconciler.inert import for_log
from reconciler.store.protocol import Chained, JsonObject, Outbox, StoreError
from reconciler.store.writes import StateWriteError

log = logging.getLogger(__name__)

STAND_IN_REASON = 500
"""Characters of the store's reason that a stand-in record keeps."""
STAND_IN_RETRY_S = 5.0
"""Seconds before a record whose stand-in was refused too is tried again."""


def utc_timestamp(wall: float) -> str:
    """``wall`` (epoch seconds) in ISO 8601, UTC, milliseconds: ``2026-11-22T10:15:00.123Z``."""
    moment = datetime.fromtimestamp(wall, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class _Unstored:
    """A record appended but not stored yet: its id and time are fixed when it is made."""

    id: str
    timestamp: str
    action: str
    actor: str
    target: dict[str, Any]
    details: dict[str, Any]
    commit: str
    revision: str | None

    def stand_in(self, reason: str) -> _Unstored:
        """This record as far as a store that refused it can be told: what, when, which
        commit, why it was refused, and the sha256 of its canonical JSON (who and on what
        are in it: a verifier holding the original can match it)."""
        content = {"actor": self.actor, "target": self.target, "details": self.details}
        digest = hashlib.sha256(canonical_json(content).encode()).hexdigest()
        details = {"stand_in": True, "reason": reason[:STAND_IN_REASON], "sha256": digest}
        return replace(self, actor="unknown", target={}, details=details)

    def chained(self, seq: int, prev_hash: str) -> AuditRecord:
        return AuditRecord.create(
            seq=seq,
            id=self.id,
            timestamp=self.timestamp,
            action=self.action,
            actor=self.actor,
            target=self.target,
            details=self.details,
            commit=self.commit,
            revision=self.revision,
            prev_hash=prev_hash,
        )


class AuditLog:
    """The chained, durable outbox of audit records (see the module's docstring)."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        clock: Clock | None = None,
        deferred: bool = False,
    ) -> None:
        self._outbox = outbox
        self._clock = clock or RealClock()
        self.deferred = deferred
        """Appends only keep records; :meth:`flush` stores them (see the module's docstring)."""
        self.on_kept: Callable[[], None] | None = None
        """Deferred: told (on the appending thread) of each record kept to be stored."""
        self._lock = threading.Lock()
        """Held while the outbox is used: one flush (or read) at a time."""
        self._kept_lock = threading.Lock()
        """The kept records', held only to add or take one (never during a round trip)."""
        self._backlog: deque[_Unstored] = deque()

    def append(
        self,
        *,
        action: str,
        actor: str,
        target: dict[str, Any],
        details: dict[str, Any],
        commit: str,
        revision: str | None,
    ) -> AuditRecord | None:
        """Chain a new record after the last one and commit it; return it.

        ValueError for an unknown action or a target/details that is not plain JSON (at
        once). When the database cannot be written now, the record is kept, in order,
        with its id and timestamp, and stored by :meth:`flush` later: None then (and
        always when :attr:`deferred`: it is stored by the next flush).
        :class:`AuditStoreError` for any other failure of the database.
        """
        entry = _Unstored(
            uuid.uuid4().hex,
            utc_timestamp(self._clock.wall()),
            action,
            actor,
            target,
            details,
            commit,
            revision,
        )
        entry.chained(1, GENESIS_HASH)  # the ValueError of a bad record now, not at flush
        if self.deferred:
            with self._kept_lock:
                self._backlog.append(entry)
            if self.on_kept is not None:
                self.on_kept()
            return None
        with self._lock:
            with self._kept_lock:
                self._backlog.append(entry)
            try:
                stored = self._flush()
            except StateWriteError:
                return None
        return stored[-1] if stored and stored[-1].id == entry.id else None

    @property
    def unstored(self) -> int:
        """Records appended that the database could not store yet (kept in memory)."""
        return len(self._backlog)

    def flush(self) -> int:
        """Store the records kept in memory, oldest first; how many were stored.

        :class:`~reconciler.store.writes.StateWriteError` while the database still cannot
        be written (those not stored stay kept, in order).
        """
        with self._lock:
            return len(self._flush())

    def _flush(self) -> list[AuditRecord]:
        """Store the kept records, oldest first (the caller holds ``_lock``: appends may
        add more meanwhile, at the end, and are stored too)."""
        stored: list[AuditRecord] = []
        while True:
            with self._kept_lock:
                if not self._backlog:
                    return stored
                entry = self._backlog[0]
            stored.append(self._store_or_stand_in(entry))
            with self._kept_lock:
                self._backlog.popleft()

    def _store_or_stand_in(self, entry: _Unstored) -> AuditRecord:
        """Store ``entry``; when the store refuses it (a :class:`StoreError`, not a write
        to retry), a stand-in in its place: that record's error alone, the chain and the
        records after it go on. StateWriteError (retried) if the stand-in is refused too:
        then the database refuses everything, and nothing is dropped."""
        try:
            return self._store_one(entry)
        except AuditStoreError as exc:
            refused = str(exc)
        log.error("audit: record %s (%s) refused by the state store, a stand-in stored: %s",
                  entry.id, entry.action, for_log(refused))  # fmt: skip
        try:
            return self._store_one(entry.stand_in(refused))
        except AuditStoreError as exc:
            raise StateWriteError("audit", str(exc), delay=STAND_IN_RETRY_S) from exc

    def _store_one(self, entry: _Unstored) -> AuditRecord:
        """Chain ``entry`` after the last stored record, once by its id (see
        :meth:`~reconciler.store.protocol.Outbox.append`: the chain never forks)."""

        def chain(seq: int, prev_hash: str) -> Chained:
            record = entry.chained(seq, prev_hash or GENESIS_HASH)
            return Chained(record.hash, record.to_json())

        with _store():
            return _record(self._outbox.append(entry.id, chain))

    def pending(self, *, limit: int | None = None) -> list[AuditRecord]:
        """Records not delivered yet, in seq order; the first ``limit`` of them if given."""
        with self._lock, _store():
            rows = self._outbox.pending(limit=limit)
        return [_record(row) for row in rows]

    def pending_count(self) -> int:
        """Records not delivered yet, those not stored yet included."""
        with self._lock, _store():
            return self._outbox.pending_count() + len(self._backlog)

    def mark_delivered(self, seqs: Iterable[int]) -> None:
        """Records ``seqs`` were pushed: they are no longer pending.

        :class:`~reconciler.store.writes.StateWriteError` if that cannot be written: they
        stay pending and are pushed again (the notes keep each record once, by id).
        """
        with self._lock, _store():
            self._outbox.mark_delivered(seqs)

    def all_records(self) -> list[AuditRecord]:
        """Every record, delivered or not, in seq order."""
        with self._lock, _store():
            rows = self._outbox.all_records()
        return [_record(row) for row in rows]


def _record(row: JsonObject) -> AuditRecord:
    try:
        return AuditRecord.from_json(row)
    except (ValueError, AuditFormatError) as exc:
        raise AuditStoreError(f"audit outbox holds a malformed record: {exc}") from exc


@contextmanager
def _store() -> Iterator[None]:
    """Turns the store's errors into :class:`AuditStoreError` (a failed write is a
    :class:`~reconciler.store.writes.StateWriteError`, and passes)."""
    try:
        yield
    except StoreError as exc:
        raise AuditStoreError(str(exc)) from exc
