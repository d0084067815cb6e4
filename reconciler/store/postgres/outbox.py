"""The audit outbox in PostgreSQL: the ``audit_records`` table, as in SQLite
(:mod:`reconciler.store.sqlite.outbox`): seq 1, 2, 3… with no gap, each record's hash the
next one's ``prev_hash``, ``delivered_at`` NULL while it is not pushed as a git note.

:meth:`PostgresOutbox.append` reads the last record and stores the next in one
transaction, fenced by the store's term and under a transaction advisory lock
(:data:`CHAIN_LOCK`): two processes cannot chain after the same record, so the chain never
forks, and a record already stored under its id (a commit whose answer was lost) is
returned, not stored again. While the database cannot be reached, :meth:`pending` answers
with no record (delivery waits) and :meth:`pending_count` with the last count read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from reconciler.store.postgres.db import Database
from reconciler.store.protocol import Chained, JsonObject, decode_record
from reconciler.store.text import to_json
from reconciler.store.writes import StateWriteError

CHAIN_LOCK = 0x4F70734D0002
"""``pg_advisory_xact_lock`` key held while a record is chained."""


class PostgresOutbox:
    """:class:`~reconciler.store.protocol.Outbox` on the store's :class:`Database`."""

    def __init__(self, db: Database, *, wall: Callable[[], float] = time.time) -> None:
        self._db = db
        self._wall = wall
        self._pending_count = 0

    def append(self, record_id: str, chain: Callable[[int, str], Chained]) -> JsonObject:
        with self._db.write("audit") as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (CHAIN_LOCK,))
            known = cur.execute(
                "SELECT record FROM audit_records WHERE id = %s", (record_id,)
            ).fetchone()
            if known is not None:
                return decode_record(known[0])
            last = cur.execute(
                "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq, prev_hash = (1, "") if last is None else (int(last[0]) + 1, str(last[1]))
            made = chain(seq, prev_hash)
            cur.execute(
                "INSERT INTO audit_records (seq, id, hash, record, created_at)"
                " VALUES (%s, %s, %s, %s, %s)",
                (seq, record_id, made.hash, to_json(made.record), self._wall()),
            )
        return made.record

    def pending(self, *, limit: int | None = None) -> list[JsonObject]:
        try:
            with self._db.read("read audit records", what="audit") as cur:
                rows = cur.execute(
                    "SELECT record FROM audit_records WHERE delivered_at IS NULL"
                    " ORDER BY seq LIMIT %s",
                    (limit,),  # LIMIT NULL: all of them
                ).fetchall()
        except StateWriteError:
            return []
        return [decode_record(row[0]) for row in rows]

    def pending_count(self) -> int:
        try:
            with self._db.read("count pending audit records", what="audit") as cur:
                row = cur.execute(
                    "SELECT count(*) FROM audit_records WHERE delivered_at IS NULL"
                ).fetchone()
        except StateWriteError:
            return self._pending_count
        self._pending_count = int(row[0]) if row else 0
        return self._pending_count

    def mark_delivered(self, seqs: Iterable[int]) -> None:
        wanted = sorted({int(seq) for seq in seqs})
        with self._db.write("audit") as cur:
            cur.execute(
                "UPDATE audit_records SET delivered_at = %s"
                " WHERE seq = ANY(%s) AND delivered_at IS NULL",
                (self._wall(), wanted),
            )

    def all_records(self) -> list[JsonObject]:
        with self._db.read("read audit records") as cur:
            rows = cur.execute("SELECT record FROM audit_records ORDER BY seq").fetchall()
        return [decode_record(row[0]) for row in rows]
