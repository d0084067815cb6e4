"""The audit outbox in SQLite: the ``audit_records`` table of the state database::

    audit_records (
        seq          INTEGER PRIMARY KEY,   -- 1, 2, 3… with no gap
        id           TEXT NOT NULL UNIQUE,  -- uuid4 hex
        hash         TEXT NOT NULL,         -- the record's hash, the next one's prev_hash
        record       TEXT NOT NULL,         -- the record's JSON (AuditRecord.to_json)
        created_at   REAL NOT NULL,         -- epoch seconds
        delivered_at REAL                   -- NULL while not pushed as a git note
    )

A lock serializes this class's use of the connection (shared with the meta values), so
that a call from a worker thread cannot interleave with one from the event loop.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable

from reconciler.store.protocol import Chained, JsonObject, decode_record
from reconciler.store.sqlite.errors import translated as _store
from reconciler.store.text import to_json
from reconciler.store.writes import StateWrites


class SqliteOutbox:
    """:class:`~reconciler.store.protocol.Outbox` on the store's connection."""

    def __init__(
        self, db: sqlite3.Connection, writes: StateWrites, *, wall: Callable[[], float] = time.time
    ) -> None:
        self._db = db
        self._writes = writes
        self._wall = wall
        self._lock = threading.Lock()

    def append(self, record_id: str, chain: Callable[[int, str], Chained]) -> JsonObject:
        """Chain the record after the last stored one, in one transaction, once by id.

        A failed transaction stores nothing, so the next attempt chains it again after the
        same last record (the chain never forks); a record already stored under its id
        (its commit went through, but was reported failed) is not stored twice.
        """
        with self._lock, _store("write an audit record"), self._writes.guard("audit"):
            known = self._db.execute(
                "SELECT record FROM audit_records WHERE id = ?", (record_id,)
            ).fetchone()
            if known is not None:
                return decode_record(known[0])
            last = self._db.execute(
                "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq, prev_hash = (1, "") if last is None else (int(last[0]) + 1, str(last[1]))
            made = chain(seq, prev_hash)
            with self._db:
                self._db.execute(
                    "INSERT INTO audit_records (seq, id, hash, record, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (seq, record_id, made.hash, to_json(made.record), self._wall()),
                )
            return made.record

    def pending(self, *, limit: int | None = None) -> list[JsonObject]:
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
        now = self._wall()
        rows = [(now, seq) for seq in seqs]
        doing = "mark audit records delivered"
        with self._lock, _store(doing), self._writes.guard("audit"), self._db:
            self._db.executemany(
                "UPDATE audit_records SET delivered_at = ? WHERE seq = ? AND delivered_at IS NULL",
                rows,
            )

    def all_records(self) -> list[JsonObject]:
        return self._select("ORDER BY seq")

    def _select(self, where: str) -> list[JsonObject]:
        with self._lock, _store("read audit records"):
            rows = self._db.execute(
                f"SELECT record FROM audit_records {where}"  # noqa: S608
            ).fetchall()
        return [decode_record(row[0]) for row in rows]
