"""The audit outbox: every record is committed to SQLite before anything else sees it.

:class:`AuditLog` keeps the chain in the ``audit_records`` table of the state database
(one connection, shared with the rest of the reconciler; the table is part of the
database's one versioned schema, in :mod:`reconciler.loop.state`)::

    audit_records (
        seq          INTEGER PRIMARY KEY,   -- 1, 2, 3… with no gap
        id           TEXT NOT NULL UNIQUE,  -- uuid4 hex
        hash         TEXT NOT NULL,         -- the record's hash, the next one's prev_hash
        record       TEXT NOT NULL,         -- the record's JSON (AuditRecord.to_json)
        created_at   REAL NOT NULL,         -- epoch seconds
        delivered_at REAL                   -- NULL while not pushed as a git note
    )

A record that cannot be stored (disk full, I/O error, locked: a
:class:`~reconciler.store.writes.StateWriteError`) is kept in memory, in order, with its id
and timestamp fixed, and stored by :meth:`AuditLog.flush` (the delivery loop retries it
with backoff): never dropped, chained when it is stored, stored once by its id.

Records are delivered (as git notes) by someone else; :meth:`AuditLog.mark_delivered`
is called only after they were pushed. A lock serializes this class's own use of the
connection, so that a call from a worker thread cannot interleave with one from the
event loop; the connection being shared, calls are best kept on the loop's thread (the
publisher gets records, not the connection).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler.audit.errors import AuditFormatError, AuditStoreError
from reconciler.audit.record import GENESIS_HASH, AuditRecord
from reconciler.store.writes import StateWriteError, StateWrites


def utc_timestamp() -> str:
    """Now, as ISO 8601 in UTC with milliseconds: ``2026-11-22T10:15:00.123Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
        db: sqlite3.Connection,
        *,
        clock: Callable[[], str] = utc_timestamp,
        writes: StateWrites | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._writes = writes or StateWrites()
        self._lock = threading.Lock()
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
        with its id and timestamp, and stored by :meth:`flush` later: None then.
        :class:`AuditStoreError` for any other failure of the database.
        """
        entry = _Unstored(
            uuid.uuid4().hex, self._clock(), action, actor, target, details, commit, revision
        )
        entry.chained(1, GENESIS_HASH)  # the ValueError of a bad record now, not at flush
        with self._lock:
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
        stored = []
        while self._backlog:
            stored.append(self._store_one(self._backlog[0]))
            self._backlog.popleft()
        return stored

    def _store_one(self, entry: _Unstored) -> AuditRecord:
        """Chain ``entry`` after the last stored record, in one transaction, once by id.

        A failed transaction stores nothing, so the next attempt chains it again after
        the same last record (the chain never forks); a record already stored under its id
        (its commit went through, but was reported failed) is not stored twice.
        """
        with _store("write an audit record"), self._writes.guard("audit"):
            known = self._db.execute(
                "SELECT record FROM audit_records WHERE id = ?", (entry.id,)
            ).fetchone()
            if known is not None:
                return AuditRecord.from_json(json.loads(known[0]))
            last = self._db.execute(
                "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq, prev_hash = (1, GENESIS_HASH) if last is None else (last[0] + 1, last[1])
            record = entry.chained(seq, prev_hash)
            with self._db:
                self._db.execute(
                    "INSERT INTO audit_records (seq, id, hash, record, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (seq, record.id, record.hash, json.dumps(record.to_json()), time.time()),
                )
            return record

    def pending(self, *, limit: int | None = None) -> list[AuditRecord]:
        """Records not delivered yet, in seq order; the first ``limit`` of them if given."""
        if limit is None:
            return self._select("WHERE delivered_at IS NULL ORDER BY seq")
        return self._select(f"WHERE delivered_at IS NULL ORDER BY seq LIMIT {int(limit)}")

    def pending_count(self) -> int:
        """Records not delivered yet, those not stored yet included."""
        with self._lock, _store("count pending audit records"):
            row = self._db.execute(
                "SELECT count(*) FROM audit_records WHERE delivered_at IS NULL"
            ).fetchone()
            return int(row[0]) + len(self._backlog)

    def mark_delivered(self, seqs: Iterable[int]) -> None:
        """Records ``seqs`` were pushed: they are no longer pending.

        :class:`~reconciler.store.writes.StateWriteError` if that cannot be written: they
        stay pending and are pushed again (the notes keep each record once, by id).
        """
        now = time.time()
        rows = [(now, seq) for seq in seqs]
        doing = "mark audit records delivered"
        with self._lock, _store(doing), self._writes.guard("audit"), self._db:
            self._db.executemany(
                "UPDATE audit_records SET delivered_at = ? WHERE seq = ? AND delivered_at IS NULL",
                rows,
            )

    def all_records(self) -> list[AuditRecord]:
        """Every record, delivered or not, in seq order."""
        return self._select("ORDER BY seq")

    def _select(self, where: str) -> list[AuditRecord]:
        with self._lock, _store("read audit records"):
            rows = self._db.execute(
                f"SELECT record FROM audit_records {where}"  # noqa: S608
            ).fetchall()
        try:
            return [AuditRecord.from_json(json.loads(row[0])) for row in rows]
        except (ValueError, AuditFormatError) as exc:
            raise AuditStoreError(f"audit outbox holds a malformed record: {exc}") from exc


@contextmanager
def _store(doing: str) -> Iterator[None]:
    """Turns sqlite3's errors into :class:`AuditStoreError` (a failed write is already a
    :class:`~reconciler.store.writes.StateWriteError` by then, and passes)."""
    try:
        yield
    except sqlite3.Error as exc:
        raise AuditStoreError(f"cannot {doing}: {exc}") from exc
