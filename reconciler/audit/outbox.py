"""The audit outbox: every record is committed to SQLite before anything else sees it.

:class:`AuditLog` keeps the chain in the ``audit_records`` table of the state database
(one connection, shared with the rest of the reconciler; the table is part of the
database's one versioned schema, in :mod:`reconciler.state`)::

    audit_records (
        seq          INTEGER PRIMARY KEY,   -- 1, 2, 3… with no gap
        id           TEXT NOT NULL UNIQUE,  -- uuid4 hex
        hash         TEXT NOT NULL,         -- the record's hash, the next one's prev_hash
        record       TEXT NOT NULL,         -- the record's JSON (AuditRecord.to_json)
        created_at   REAL NOT NULL,         -- epoch seconds
        delivered_at REAL                   -- NULL while not pushed as a git note
    )

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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from reconciler.audit.errors import AuditFormatError, AuditStoreError
from reconciler.audit.record import GENESIS_HASH, AuditRecord


def utc_timestamp() -> str:
    """Now, as ISO 8601 in UTC with milliseconds: ``2026-11-22T10:15:00.123Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AuditLog:
    """The chained, durable outbox of audit records (see the module's docstring)."""

    def __init__(self, db: sqlite3.Connection, *, clock: Callable[[], str] = utc_timestamp) -> None:
        self._db = db
        self._clock = clock
        self._lock = threading.Lock()

    def append(
        self,
        *,
        action: str,
        actor: str,
        target: dict[str, Any],
        details: dict[str, Any],
        commit: str,
        revision: str | None,
    ) -> AuditRecord:
        """Chain a new record after the last one and commit it; return it.

        ValueError for an unknown action or a target/details that is not plain JSON;
        :class:`AuditStoreError` if the database cannot be written.
        """
        with self._lock, _store("write an audit record"):
            last = self._db.execute(
                "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq, prev_hash = (1, GENESIS_HASH) if last is None else (last[0] + 1, last[1])
            record = AuditRecord.create(
                seq=seq,
                id=uuid.uuid4().hex,
                timestamp=self._clock(),
                action=action,
                actor=actor,
                target=target,
                details=details,
                commit=commit,
                revision=revision,
                prev_hash=prev_hash,
            )
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
        with self._lock, _store("count pending audit records"):
            row = self._db.execute(
                "SELECT count(*) FROM audit_records WHERE delivered_at IS NULL"
            ).fetchone()
        return int(row[0])

    def mark_delivered(self, seqs: Iterable[int]) -> None:
        """Records ``seqs`` were pushed: they are no longer pending."""
        now = time.time()
        rows = [(now, seq) for seq in seqs]
        with self._lock, _store("mark audit records delivered"), self._db:
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
    """Turns sqlite3's errors into :class:`AuditStoreError`."""
    try:
        yield
    except sqlite3.Error as exc:
        raise AuditStoreError(f"cannot {doing}: {exc}") from exc
