"""The SQLite database's one versioned schema (the check statuses', the meta values', the
request journal's and the audit outbox's tables), checked and migrated when it is opened.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from reconciler.store.protocol import StateError

Connect = Callable[..., sqlite3.Connection]
"""``sqlite3.connect`` or a function like it (the seam where tests make writes fail)."""

APPLICATION_ID = 0x4F70734D
"""``PRAGMA application_id`` of OpsMap's database ("OpsM"): tells it from another program's."""
SCHEMA_VERSION = 5
"""``PRAGMA user_version`` of the schema below. Version 1 (the first release) set no
application_id and created the journal and audit tables lazily; version 3 keeps each
request's identities (who asked and approved, verified or claimed) in the journal;
version 4 whether each check's host was reached on its last run (as PostgreSQL's);
version 5 text columns in the store's encoding (:mod:`reconciler.store.text`)."""

_TABLES_NOW = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE check_status (
    map TEXT NOT NULL, component TEXT NOT NULL, check_name TEXT NOT NULL, host TEXT NOT NULL,
    state INTEGER, state_type TEXT NOT NULL, hard_state INTEGER, attempt INTEGER NOT NULL,
    message TEXT NOT NULL, value REAL, last_run REAL, duration REAL, last_hard_change REAL,
    flapping INTEGER NOT NULL, history TEXT NOT NULL, reachable INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (map, component, check_name, host)
)""",
    # the request journal (reconciler.store.sqlite.journal)
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
    # the audit outbox (reconciler.store.sqlite.outbox)
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
    # Version 3 kept no reachability: old rows read as reached (as before, by default).
    3: ("ALTER TABLE check_status ADD COLUMN reachable INTEGER NOT NULL DEFAULT 1",),
    # Version 4 wrote text as it was (reconciler.store.text): a backslash is two now.
    4: (
        r"UPDATE meta SET key = replace(key, '\', '\\')",
        r"UPDATE check_status SET map = replace(map, '\', '\\'),"
        r" component = replace(component, '\', '\\'),"
        r" check_name = replace(check_name, '\', '\\'), host = replace(host, '\', '\\'),"
        r" state_type = replace(state_type, '\', '\\'), message = replace(message, '\', '\\')",
        r"UPDATE requests SET path = replace(path, '\', '\\'),"
        r" commit_sha = replace(commit_sha, '\', '\\'),"
        r" requester = replace(requester, '\', '\\'), approver = replace(approver, '\', '\\'),"
        r" state = replace(state, '\', '\\'), rule = replace(rule, '\', '\\')",
    ),
}
"""For each version, the statements that take a database of that version to the next."""

_TABLES = frozenset({"meta", "check_status", "requests", "audit_records"})
"""The tables of a database at SCHEMA_VERSION; versions 1 to 4 had the same (1: the last two
lazily)."""


def open_database(path: Path, connect: Connect) -> sqlite3.Connection:
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


def connect_full(path: Path, connect: Connect) -> sqlite3.Connection:
    """A second connection to the database, opened by :func:`open_database`, with full sync."""
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
