"""The request journal in PostgreSQL: the ``requests`` table (see
:class:`reconciler.store.protocol.Journal` for what the journal guarantees).

Each write is one transaction, fenced by the store's term, committed (so durable) when it
returns; one that fails raises :class:`~reconciler.store.writes.StateWriteError` and
leaves the table as it was. A commit whose answer was lost may have gone through: writing
the same thing again is harmless (``started`` finds its own row; ``finished`` sets the
same values).

Reads: :meth:`get` and :meth:`entries` decide what runs, so while the database cannot be
reached they raise StateWriteError (``journal``): the request processor waits and retries,
as for a failed write. :meth:`recent` and :meth:`count` feed the status only: they answer
with the last value read meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from reconciler.store.postgres.db import Database
from reconciler.store.protocol import (
    JournalEntry,
    JournalRows,
    RequestState,
    StoreError,
    journal_entry,
    journal_row,
)
from reconciler.store.text import to_json, to_stored
from reconciler.store.writes import StateWriteError

_COLUMNS = (
    "path, commit_sha, requester, approver, state, rule, created_at, finished_at, outcome, identity"
)
_SELECT = f"SELECT {_COLUMNS} FROM requests"  # noqa: S608  # constant text


class PostgresJournal(JournalRows):
    """:class:`~reconciler.store.protocol.Journal` on the store's :class:`Database`."""

    def __init__(self, db: Database, *, wall: Callable[[], float] = time.time) -> None:
        self._db = db
        self._wall = wall
        self._recent: dict[int, list[JournalEntry]] = {}
        self._count = 0

    def recent(self, limit: int) -> list[JournalEntry]:
        try:
            with self._db.read("read the journal", what="journal") as cur:
                rows = cur.execute(
                    f"{_SELECT} ORDER BY created_at DESC, added DESC LIMIT %s", (limit,)
                ).fetchall()
        except StateWriteError:
            return list(self._recent.get(limit, []))
        entries = [journal_entry(r) for r in rows]
        self._recent = {limit: entries}
        return entries

    def count(self) -> int:
        try:
            with self._db.read("count the journal", what="journal") as cur:
                row = cur.execute("SELECT count(*) FROM requests").fetchone()
        except StateWriteError:
            return self._count
        self._count = int(row[0]) if row else 0
        return self._count

    def get(self, path: str) -> JournalEntry | None:
        with self._db.read("read the journal", what="journal") as cur:
            row = cur.execute(f"{_SELECT} WHERE path = %s", (to_stored(path),)).fetchone()
        return journal_entry(row) if row else None

    def entries(self) -> list[JournalEntry]:
        with self._db.read("read the journal", what="journal") as cur:
            rows = cur.execute(f"{_SELECT} ORDER BY created_at, added").fetchall()
        return [journal_entry(r) for r in rows]

    def finished(self, path: str, state: RequestState, outcome: dict[str, object]) -> None:
        with self._db.write("journal") as cur:
            cur.execute(
                "UPDATE requests SET state = %s, finished_at = %s, outcome = %s WHERE path = %s",
                (to_stored(state), self._wall(), to_json(outcome, sort_keys=True), to_stored(path)),
            )

    def recover(
        self, on_unknown: Callable[[JournalEntry], None] | None = None
    ) -> list[JournalEntry]:
        """Requests left running by a process that died (or lost the database): now
        ``unknown``, returned once; each marked in its own fenced transaction, only if it
        is still running (two callers cannot both mark one)."""
        with self._db.read("read the journal", what="journal") as cur:
            rows = cur.execute(f"{_SELECT} WHERE state = 'running' ORDER BY created_at, added")
            stale = [journal_entry(r) for r in rows.fetchall()]
        marked = []
        outcome = to_json(
            {"result": "unknown", "reason": "OpsMap stopped while the action ran"},
            sort_keys=True,
        )
        for entry in stale:
            with self._db.write("journal") as cur:
                cur.execute(
                    "UPDATE requests SET state = 'unknown', finished_at = %s, outcome = %s"
                    " WHERE path = %s AND state = 'running'",
                    (self._wall(), outcome, to_stored(entry.path)),
                )
                changed = cur.rowcount == 1
            if changed:
                marked.append(entry)
                if on_unknown is not None:
                    on_unknown(entry)
        return marked

    def _insert(
        self,
        path: str,
        commit: str,
        requester: str | None,
        approver: str | None,
        state: RequestState,
        rule: str,
        identity: dict[str, object] | None,
    ) -> None:
        now = self._wall()
        people = None if identity is None else to_json(identity, sort_keys=True)
        text = journal_row(path, commit, requester, approver, state, rule)
        with self._db.write("journal") as cur:
            cur.execute(
                "INSERT INTO requests (path, commit_sha, requester, approver, state, rule,"
                " created_at, finished_at, identity) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (path) DO NOTHING",
                (*text, now, None if state == "running" else now, people),
            )
            if cur.rowcount == 1:
                return
            row = cur.execute(
                "SELECT commit_sha, state FROM requests WHERE path = %s", (text[0],)
            ).fetchone()
        if row is None or (row[0], row[1]) != (text[1], text[4]):
            raise StoreError(f"the journal holds request {path} already (as {row})")
        # else: this very write, committed once already (its answer was lost)
