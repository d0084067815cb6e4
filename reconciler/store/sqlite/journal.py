"""The request journal in SQLite: the ``requests`` table (see
:class:`reconciler.store.protocol.Journal` for what the journal guarantees).

A write that fails (disk full, I/O error, locked) raises
:class:`~reconciler.store.writes.StateWriteError` and leaves the table as it was.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from reconciler.store.protocol import (
    JournalEntry,
    JournalRows,
    RequestState,
    journal_entry,
    journal_row,
)
from reconciler.store.sqlite.errors import translated
from reconciler.store.text import to_json, to_stored
from reconciler.store.writes import StateWrites


class SqliteJournal(JournalRows):
    """The ``requests`` table (event-loop thread only), on the store's ``synchronous=FULL``
    connection: each write is on the disk when it returns."""

    def __init__(
        self, db: sqlite3.Connection, writes: StateWrites, *, wall: Callable[[], float] = time.time
    ) -> None:
        self._db = db
        self._writes = writes
        self._wall = wall

    def recent(self, limit: int) -> list[JournalEntry]:
        """The ``limit`` newest requests, newest first (a bounded read for the status)."""
        with translated("read the journal"):
            rows = self._db.execute(
                "SELECT * FROM requests ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,)
            ).fetchall()
        return [journal_entry(r) for r in rows]

    def count(self) -> int:
        with translated("count the journal"):
            return int(self._db.execute("SELECT COUNT(*) FROM requests").fetchone()[0])

    def get(self, path: str) -> JournalEntry | None:
        with translated("read the journal"):
            row = self._db.execute(
                "SELECT * FROM requests WHERE path = ?", (to_stored(path),)
            ).fetchone()
        return journal_entry(row) if row else None

    def entries(self) -> list[JournalEntry]:
        with translated("read the journal"):
            rows = self._db.execute("SELECT * FROM requests ORDER BY created_at").fetchall()
        return [journal_entry(r) for r in rows]

    def finished(self, path: str, state: RequestState, outcome: dict[str, object]) -> None:
        with translated("write the journal"), self._writes.guard("journal"), self._db:
            self._db.execute(
                "UPDATE requests SET state = ?, finished_at = ?, outcome = ? WHERE path = ?",
                (to_stored(state), self._wall(), to_json(outcome, sort_keys=True), to_stored(path)),
            )

    def recover(
        self, on_unknown: Callable[[JournalEntry], None] | None = None
    ) -> list[JournalEntry]:
        """Requests left running by a process that died: now ``unknown``, returned once.

        ``on_unknown`` is told of each as soon as it is marked. :class:`StateWriteError`
        if one cannot be marked: those marked before it were told of and are not found
        again; it and the rest are, by the next call."""
        with translated("read the journal"):
            rows = self._db.execute("SELECT * FROM requests WHERE state = 'running'").fetchall()
        stale = [journal_entry(r) for r in rows]
        for entry in stale:
            reason = "OpsMap stopped while the action ran"
            self.finished(entry.path, "unknown", {"result": "unknown", "reason": reason})
            if on_unknown is not None:
                on_unknown(entry)
        return stale

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
        with translated("write the journal"), self._writes.guard("journal"), self._db:
            self._db.execute(
                "INSERT INTO requests (path, commit_sha, requester, approver, state, rule,"
                " created_at, finished_at, identity) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*text, now, None if state == "running" else now, people),
            )
