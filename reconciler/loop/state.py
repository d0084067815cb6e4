"""The reconciler's durable state in SQLite: revisions and the last result of every check,
and the one versioned schema of the whole database (the request journal's and the audit
outbox's tables included), checked and migrated when the store opens.

Every write goes through :attr:`StateStore.writes`: a failure (disk full, I/O error, locked)
is a :class:`~reconciler.store.writes.StateWriteError` to retry later, never a crash. The
request journal has a connection of its own with ``synchronous=FULL`` (:attr:`journal_db`):
a journal row is on the disk before its request's action starts, where the rest of the
state (WAL with ``synchronous=NORMAL``) may lose its last commits to a power loss.

Times are stored as wall-clock epochs; the scheduler works on a monotonic clock, so the
store is given the offset between the two when it loads or saves.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agentless.result import CheckState
from reconciler.loop import statedir
from reconciler.loop.checkstate import FLAP_WINDOW, CheckStatus, StateType
from reconciler.loop.scheduler import CheckKey
from reconciler.store.writes import StateWrites

Connect = Callable[..., sqlite3.Connection]
"""``sqlite3.connect`` or a function like it (the seam where tests make writes fail)."""

APPLICATION_ID = 0x4F70734D
"""``PRAGMA application_id`` of OpsMap's database ("OpsM"): tells it from another program's."""
SCHEMA_VERSION = 3
"""``PRAGMA user_version`` of the schema below. Version 1 (the first release) set no
application_id and created the journal and audit tables lazily; version 3 keeps each
request's identities (who asked and approved, verified or claimed) in the journal."""

_TABLES_NOW = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE check_status (
    map TEXT NOT NULL, component TEXT NOT NULL, check_name TEXT NOT NULL, host TEXT NOT NULL,
    state INTEGER, state_type TEXT NOT NULL, hard_state INTEGER, attempt INTEGER NOT NULL,
    message TEXT NOT NULL, value REAL, last_run REAL, duration REAL, last_hard_change REAL,
    flapping INTEGER NOT NULL, history TEXT NOT NULL,
    PRIMARY KEY (map, component, check_name, host)
)""",
    # the request journal (reconciler.requests.journal)
    """CREATE TABLE requests (
    path TEXT PRIMARY KEY,
    commit_sha TEXT NOT NULL,
    requester TEXT,
    approver TEXT,
    state TEXT NOT NULL,
    rule TEXT NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL,
    outcome TEXT,
    identity TEXT
)""",
    "CREATE INDEX requests_running ON requests (path) WHERE state = 'running'",
    # the audit outbox (reconciler.audit.outbox)
    """CREATE TABLE audit_records (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    hash TEXT NOT NULL,
    record TEXT NOT NULL,
    created_at REAL NOT NULL,
    delivered_at REAL
)""",
    "CREATE INDEX audit_records_pending ON audit_records (seq) WHERE delivered_at IS NULL",
)
"""The whole database at SCHEMA_VERSION, as a new state directory gets it."""

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    # Version 1 created `requests` and `audit_records` only when the journal and the
    # outbox were first used (a process that died before has neither), and no index on
    # the requests left running. Frozen text: later versions add steps, never edit one.
    1: (
        """CREATE TABLE IF NOT EXISTS requests (
    path TEXT PRIMARY KEY, commit_sha TEXT NOT NULL, requester TEXT, approver TEXT,
    state TEXT NOT NULL, rule TEXT NOT NULL, created_at REAL NOT NULL, finished_at REAL,
    outcome TEXT
)""",
        """CREATE TABLE IF NOT EXISTS audit_records (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, hash TEXT NOT NULL,
    record TEXT NOT NULL, created_at REAL NOT NULL, delivered_at REAL
)""",
        "CREATE INDEX IF NOT EXISTS audit_records_pending ON audit_records (seq)"
        " WHERE delivered_at IS NULL",
        "CREATE INDEX requests_running ON requests (path) WHERE state = 'running'",
    ),
    # Version 2 kept no identities: old rows get NULL (shown as not recorded).
    2: ("ALTER TABLE requests ADD COLUMN identity TEXT",),
}
"""For each version, the statements that take a database of that version to the next."""

_TABLES = frozenset({"meta", "check_status", "requests", "audit_records"})
"""The tables of a database at SCHEMA_VERSION; versions 1 and 2 had the same (1: the last two
lazily)."""
_INSERT_CHECK = "INSERT INTO check_status VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


class StateError(Exception):
    """The state directory cannot be used: not OpsMap's, in use, unwritable, corrupt,
    or written by a newer OpsMap."""


class StateStore:
    """The state directory (claimed for this process, see :mod:`reconciler.loop.statedir`) and
    its one SQLite database, whose schema is checked and migrated here; used from the event
    loop's thread only."""

    def __init__(self, state_dir: Path, *, connect: Connect = sqlite3.connect) -> None:
        self.writes = StateWrites()
        """Which writes fail now and why (health, metrics, logs)."""
        self._connect = connect
        try:
            self._claim = statedir.claim(state_dir)
        except statedir.StateDirError as exc:
            raise StateError(str(exc)) from exc
        self.path = state_dir / statedir.DATABASE
        try:
            self._db = _open(self.path, connect)
        except StateError:
            self._claim.release(refused=True)
            raise
        try:
            self._journal_db = _connect_full(self.path, connect)
        except StateError:
            self._db.close()
            self._claim.release()
            raise
        try:
            self._claim.adopt()
        except statedir.StateDirError as exc:
            self._db.close()
            self._claim.release()
            raise StateError(str(exc)) from exc
        self._rows_db: sqlite3.Connection | None = None
        self._rows_lock = threading.Lock()

    @property
    def db(self) -> sqlite3.Connection:
        return self._db

    @property
    def journal_db(self) -> sqlite3.Connection:
        """The request journal's connection (event-loop thread): ``synchronous=FULL``, so
        each of its commits is synced to the disk before it returns."""
        return self._journal_db

    def close(self) -> None:
        with self._rows_lock:
            if self._rows_db is not None:
                self._rows_db.close()
                self._rows_db = None
        self._journal_db.close()
        self._db.close()
        self._claim.release()

    def get_meta(self) -> dict[str, object]:
        rows = self._db.execute("SELECT key, value FROM meta").fetchall()
        return {key: json.loads(value) for key, value in rows}

    def set_meta(self, values: Mapping[str, object], *, what: str = "meta") -> None:
        """Store ``values``; :class:`StateWriteError` (as ``what``) if the write fails."""
        with self.writes.guard(what), self._db:
            self._db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(key, json.dumps(value)) for key, value in values.items()],
            )

    def load_checks(self, *, wall_offset: float) -> dict[CheckKey, CheckStatus]:
        """Every remembered check status, with times moved to the monotonic clock."""

        def mono(wall: float | None) -> float | None:
            return None if wall is None else wall - wall_offset

        statuses = {}
        for row in self._db.execute("SELECT * FROM check_status"):
            key = CheckKey(*row[:4])
            state, state_type, hard, attempt, message, value, last_run, duration, change = row[4:13]
            statuses[key] = CheckStatus(
                state=None if state is None else CheckState(state),
                state_type=StateType(state_type),
                hard_state=None if hard is None else CheckState(hard),
                attempt=attempt,
                message=message,
                value=value,
                last_run=mono(last_run),
                last_duration_s=duration,
                last_hard_change=mono(change),
                flapping=bool(row[13]),
                history=deque(json.loads(row[14]), maxlen=FLAP_WINDOW),
            )
        return statuses

    def save_checks(self, statuses: Mapping[CheckKey, CheckStatus], *, wall_offset: float) -> None:
        """Replace the stored statuses with ``statuses`` (checks gone are forgotten)."""
        self.write_check_rows(check_rows(statuses, wall_offset=wall_offset))

    def write_check_rows(self, rows: Sequence[CheckRow]) -> None:
        """Replace the stored statuses with ``rows`` (from :func:`check_rows`).

        Safe to call from a worker thread, so that a large state is not written on the
        event loop: it uses a connection of its own (SQLite lets one writer at a time, so
        a write on the loop meanwhile waits for this one transaction at most).
        :class:`StateWriteError` if the write fails (the stored rows stay as they were).
        """
        with self._rows_lock, self.writes.guard("checks"):
            if self._rows_db is None:
                db = self._connect(self.path, check_same_thread=False)
                db.execute("PRAGMA synchronous=NORMAL")
                self._rows_db = db
            db = self._rows_db
            encoded = [(*row[:-1], json.dumps(row[-1])) for row in rows]
            with db:
                db.execute("DELETE FROM check_status")
                db.executemany(_INSERT_CHECK, encoded)


CheckRow = tuple[Any, ...]
"""A ``check_status`` row, its last element the history as a list (not yet JSON)."""


def check_rows(statuses: Mapping[CheckKey, CheckStatus], *, wall_offset: float) -> list[CheckRow]:
    """The rows of ``statuses``: a copy that the loop may go on changing statuses after."""

    def wall(mono: float | None) -> float | None:
        return None if mono is None else mono + wall_offset

    return [
        (
            *key,
            None if s.state is None else s.state.value,
            s.state_type.value,
            None if s.hard_state is None else s.hard_state.value,
            s.attempt,
            s.message,
            s.value,
            wall(s.last_run),
            s.last_duration_s,
            wall(s.last_hard_change),
            int(s.flapping),
            list(s.history),
        )
        for key, s in statuses.items()
    ]


def _open(path: Path, connect: Connect) -> sqlite3.Connection:
    """Connect to OpsMap's database at ``path`` (created if absent), at SCHEMA_VERSION."""
    try:
        db = connect(path, check_same_thread=False, isolation_level=None)
    except sqlite3.Error as exc:
        raise StateError(f"cannot open {path}: {exc}") from exc
    try:
        version = _check(db, path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        if version < SCHEMA_VERSION:
            _migrate(db, version)
        db.isolation_level = "DEFERRED"  # sqlite3's implicit transactions, as callers expect
    except sqlite3.Error as exc:
        db.close()
        raise StateError(f"cannot use {path}: {exc}") from exc
    except StateError:
        db.close()
        raise
    return db


def _connect_full(path: Path, connect: Connect) -> sqlite3.Connection:
    """A second connection to the database, opened by :func:`_open`, with full sync."""
    try:
        db = connect(path, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StateError(f"cannot open {path}: {exc}") from exc
    try:
        db.execute("PRAGMA synchronous=FULL")
    except sqlite3.Error as exc:
        db.close()
        raise StateError(f"cannot use {path}: {exc}") from exc
    return db


def _check(db: sqlite3.Connection, path: Path) -> int:
    """The schema version of the database, 0 for a new one; StateError if not OpsMap's."""
    try:
        application_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
    except sqlite3.DatabaseError as exc:
        raise StateError(f"{path} is not an SQLite database OpsMap can read ({exc})") from exc
    if application_id == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{path} was written by a newer OpsMap (schema {version}; this one reads "
                f"{SCHEMA_VERSION} and older): run that version, or a new state directory"
            )
        if version in _MIGRATIONS or (version == SCHEMA_VERSION and tables == _TABLES):
            return int(version)
    elif application_id == 0 and version == 0 and not tables:
        return 0  # new (or empty) database
    elif application_id == 0 and version == 1 and {"meta", "check_status"} <= tables <= _TABLES:
        return 1  # the first release's database
    shown = ", ".join(sorted(tables)[:6]) or "none"
    raise StateError(
        f"{path} is not OpsMap's database, or is damaged (application_id {application_id}, "
        f"user_version {version}, tables: {shown}): refusing to use it"
    )


def _migrate(db: sqlite3.Connection, version: int) -> None:
    """Create (version 0) or migrate the schema to SCHEMA_VERSION, in one transaction."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if version == 0:
            for statement in _TABLES_NOW:
                db.execute(statement)
        else:
            for step in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[step]:
                    db.execute(statement)
        db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
