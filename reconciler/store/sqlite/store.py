"""The state store in SQLite: the state directory's one database, and its connections.

:class:`SqliteStore` claims the state directory (:mod:`reconciler.store.statedir`), opens
its database (schema checked and migrated by :mod:`reconciler.store.sqlite.schema`) and is
the one owner of its connections: the journal and the outbox get theirs from it, nobody
else sees one.

- the main connection (WAL, ``synchronous=NORMAL``): meta values, cursors, the outbox;
- the journal's (``synchronous=FULL``): a journal row is on the disk before its
  request's action starts, where the rest may lose its last commits to a power loss;
- the check rows' (opened on first use): written from a worker thread, so that a large
  state is not written on the event loop.

Every write goes through :attr:`SqliteStore.writes`: a failure (disk full, I/O error,
locked) is a :class:`~reconciler.store.writes.StateWriteError` to retry later.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from reconciler.clock import Clock, RealClock
from reconciler.store import statedir
from reconciler.store.protocol import (
    CHECK_COLUMNS,
    CheckId,
    CheckRow,
    StateError,
    decode_check_row,
    encode_check_id,
    encode_check_row,
)
from reconciler.store.sqlite.errors import translated
from reconciler.store.sqlite.journal import SqliteJournal
from reconciler.store.sqlite.outbox import SqliteOutbox
from reconciler.store.sqlite.schema import Connect, connect_full, open_database
from reconciler.store.text import from_json, from_stored, to_json, to_stored
from reconciler.store.writes import StateWrites

_COLUMNS = ", ".join(CHECK_COLUMNS)
_MARKS = ", ".join("?" for _ in CHECK_COLUMNS)
_INSERT_CHECK = f"INSERT INTO check_status ({_COLUMNS}) VALUES ({_MARKS})"  # noqa: S608


class SqliteStore:
    """:class:`~reconciler.store.protocol.StateStore` in the state directory ``state_dir``
    (claimed for this process); used from the event loop's thread, but for
    :meth:`write_check_rows`. ``connect`` is ``sqlite3.connect`` or a function like it
    (the seam where tests make writes fail). Every time it stores is read from ``clock``'s
    wall."""

    def __init__(
        self, state_dir: Path, *, connect: Connect = sqlite3.connect, clock: Clock | None = None
    ) -> None:
        self._clock = clock or RealClock()
        self._writes = StateWrites(clock=self._clock)
        self._connect = connect
        try:
            self._claim = statedir.claim(state_dir)
        except statedir.StateDirError as exc:
            raise StateError(str(exc)) from exc
        self.path = state_dir / statedir.DATABASE
        try:
            self._db = open_database(self.path, connect)
        except StateError:
            self._claim.release(refused=True)
            raise
        try:
            self._journal_db = connect_full(self.path, connect)
        except StateError:
            self._db.close()
            self._claim.release()
            raise
        try:
            self._claim.adopt()
        except statedir.StateDirError as exc:
            self._journal_db.close()
            self._db.close()
            self._claim.release()
            raise StateError(str(exc)) from exc
        self._rows_db: sqlite3.Connection | None = None
        self._rows_lock = threading.Lock()
        self._journal = SqliteJournal(self._journal_db, self._writes, wall=self._clock.wall)
        self._outbox = SqliteOutbox(self._db, self._writes, wall=self._clock.wall)

    @property
    def writes(self) -> StateWrites:
        return self._writes

    @property
    def blocks(self) -> bool:
        """False: a local file, on connections kept for the loop's thread (but the rows')."""
        return False

    @property
    def journal(self) -> SqliteJournal:
        return self._journal

    @property
    def outbox(self) -> SqliteOutbox:
        return self._outbox

    def pragma(self, name: str, *, connection: str = "main") -> object:
        """The value of ``PRAGMA name`` on the ``main`` or the ``journal`` connection
        (inspection: how each is synced)."""
        if not name.isidentifier():
            raise ValueError(f"not a pragma name: {name!r}")
        db = self._journal_db if connection == "journal" else self._db
        return db.execute(f"PRAGMA {name}").fetchone()[0]

    def close(self) -> None:
        with self._rows_lock:
            if self._rows_db is not None:
                self._rows_db.close()
                self._rows_db = None
        self._journal_db.close()
        self._db.close()
        self._claim.release()

    def get_meta(self) -> dict[str, object]:
        with translated("read meta values"):
            rows = self._db.execute("SELECT key, value FROM meta").fetchall()
        return {from_stored(key): from_json(value) for key, value in rows}

    def set_meta(self, values: Mapping[str, object], *, what: str = "meta") -> None:
        with translated(f"write {what}"), self._writes.guard(what), self._db:
            self._db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(to_stored(key), to_json(value)) for key, value in values.items()],
            )

    def get_cursor(self, name: str) -> str | None:
        value = self.get_meta().get(name)
        return value if isinstance(value, str) else None

    def set_cursor(self, name: str, sha: str) -> None:
        self.set_meta({name: sha}, what="cursor")

    def load_check_rows(self) -> list[CheckRow]:
        with translated("read check statuses"):
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM check_status").fetchall()  # noqa: S608
        return [decode_check_row(row) for row in rows]

    def update_check_rows(self, rows: Sequence[CheckRow], *, removed: Sequence[CheckId]) -> None:
        """As :meth:`write_check_rows`, on the same connection of its own."""
        with self._rows_lock, translated("write checks"), self._writes.guard("checks"):
            db = self._rows_connection()
            encoded = [encode_check_row(row) for row in rows]
            with db:
                db.executemany(
                    "DELETE FROM check_status"
                    " WHERE map = ? AND component = ? AND check_name = ? AND host = ?",
                    [encode_check_id(check) for check in removed],
                )
                db.executemany(_INSERT_CHECK.replace("INSERT", "INSERT OR REPLACE", 1), encoded)

    def _rows_connection(self) -> sqlite3.Connection:
        if self._rows_db is None:
            db = self._connect(self.path, check_same_thread=False)
            db.execute("PRAGMA synchronous=NORMAL")
            self._rows_db = db
        return self._rows_db

    def write_check_rows(self, rows: Sequence[CheckRow]) -> None:
        """Safe from a worker thread: on a connection of its own (SQLite lets one writer at
        a time, so a write on the loop meanwhile waits for this one transaction at most)."""
        with self._rows_lock, translated("write checks"), self._writes.guard("checks"):
            db = self._rows_connection()
            encoded = [encode_check_row(row) for row in rows]
            with db:
                db.execute("DELETE FROM check_status")
                db.executemany(_INSERT_CHECK, encoded)
