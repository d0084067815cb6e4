"""The PostgreSQL database's one versioned schema, checked and migrated when it is opened.

The version is the one row of ``schema_version``. :data:`MIGRATIONS` is ordered: step ``i``
takes a database at version ``i`` to ``i + 1`` (step 0 creates the tables in an empty
database), so a new database and an old one end the same; a step is frozen once released,
a later version adds one. All steps run in one transaction, under an advisory lock, so two
replicas starting together migrate once. A database at a newer version is refused, and so
is a database that holds tables but no ``schema_version`` (not OpsMap's).

The tables mirror SQLite's (:mod:`reconciler.store.sqlite.schema`), JSON kept as text (so
a value reads back as it was written), plus ``owner``: the term of the process that
holds the database (see :mod:`reconciler.store.postgres.owner`).
"""

from __future__ import annotations

import psycopg

from reconciler.store.protocol import StateError

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 0 -> 1: the first schema.
    (
        "CREATE TABLE schema_version (version integer NOT NULL)",
        "INSERT INTO schema_version VALUES (0)",
        """CREATE TABLE owner (
    id integer PRIMARY KEY CHECK (id = 1),
    term bigint NOT NULL,
    holder text NOT NULL,
    since double precision NOT NULL
)""",
        "INSERT INTO owner VALUES (1, 0, '', 0)",
        "CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL)",
        """CREATE TABLE check_status (
    map text NOT NULL, component text NOT NULL, check_name text NOT NULL, host text NOT NULL,
    state integer, state_type text NOT NULL, hard_state integer, attempt integer NOT NULL,
    message text NOT NULL, value double precision, last_run double precision,
    duration double precision, last_hard_change double precision,
    flapping integer NOT NULL, history text NOT NULL,
    PRIMARY KEY (map, component, check_name, host)
)""",
        """CREATE TABLE requests (
    path text PRIMARY KEY,
    commit_sha text NOT NULL,
    requester text,
    approver text,
    state text NOT NULL,
    rule text NOT NULL,
    created_at double precision NOT NULL,
    finished_at double precision,
    outcome text,
    identity text,
    added bigserial NOT NULL
)""",
        "CREATE INDEX requests_running ON requests (path) WHERE state = 'running'",
        "CREATE INDEX requests_created ON requests (created_at, added)",
        """CREATE TABLE audit_records (
    seq bigint PRIMARY KEY,
    id text NOT NULL UNIQUE,
    hash text NOT NULL,
    record text NOT NULL,
    created_at double precision NOT NULL,
    delivered_at double precision
)""",
        "CREATE INDEX audit_records_pending ON audit_records (seq) WHERE delivered_at IS NULL",
    ),
    # 1 -> 2: replicas (reconciler.store.postgres.replicas): their heartbeats, the leader's
    # lease, and which way the database is held (one process, or replicas).
    (
        "ALTER TABLE owner ADD COLUMN mode text NOT NULL DEFAULT 'single'",
        """CREATE TABLE replicas (
    id text PRIMARY KEY,
    name text NOT NULL,
    started_at timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL
)""",
        """CREATE TABLE leader_lease (
    id integer PRIMARY KEY CHECK (id = 1),
    term bigint NOT NULL,
    holder text NOT NULL,
    expires_at timestamptz NOT NULL
)""",
        "INSERT INTO leader_lease VALUES (1, 0, '', 'epoch')",
    ),
    # 2 -> 3: whether each check's host was reached on its last run, so that every replica
    # shows the hosts the others check as they found them (old rows: reached).
    ("ALTER TABLE check_status ADD COLUMN reachable integer NOT NULL DEFAULT 1",),
    # 3 -> 4: text columns in the store's encoding (reconciler.store.text), where a
    # backslash is two: those written before are doubled (E'' strings: whatever
    # standard_conforming_strings says).
    (
        r"UPDATE meta SET key = replace(key, E'\\', E'\\\\')",
        r"UPDATE check_status SET map = replace(map, E'\\', E'\\\\'),"
        r" component = replace(component, E'\\', E'\\\\'),"
        r" check_name = replace(check_name, E'\\', E'\\\\'),"
        r" host = replace(host, E'\\', E'\\\\'),"
        r" state_type = replace(state_type, E'\\', E'\\\\'),"
        r" message = replace(message, E'\\', E'\\\\')",
        r"UPDATE requests SET path = replace(path, E'\\', E'\\\\'),"
        r" commit_sha = replace(commit_sha, E'\\', E'\\\\'),"
        r" requester = replace(requester, E'\\', E'\\\\'),"
        r" approver = replace(approver, E'\\', E'\\\\'),"
        r" state = replace(state, E'\\', E'\\\\'), rule = replace(rule, E'\\', E'\\\\')",
    ),
)
"""For each version ``i``, the statements that take a database at ``i`` to ``i + 1``."""

SCHEMA_VERSION = len(MIGRATIONS)
MIGRATION_LOCK = 0x4F70734D0001
"""``pg_advisory_xact_lock`` key held while the schema is checked and migrated."""


def prepare(conn: psycopg.Connection[tuple[object, ...]], shown: str) -> int:
    """Check the schema of the database behind ``conn`` (autocommit) and migrate it to
    :data:`SCHEMA_VERSION`; the version it had (0: new). ``shown`` names the database in
    errors. StateError if it is not OpsMap's or newer."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        version = _version(conn, shown)
        if version > SCHEMA_VERSION:
            raise StateError(
                f"the state database {shown} was written by a newer OpsMap (schema {version}; "
                f"this one reads {SCHEMA_VERSION} and older): run that version, or give "
                "another database"
            )
        for step in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[step]:
                conn.execute(statement)  # frozen text above
        if version < SCHEMA_VERSION:
            conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))
    return version


def _version(conn: psycopg.Connection[tuple[object, ...]], shown: str) -> int:
    row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        tables = [
            str(r[0])
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() ORDER BY table_name LIMIT 6"
            )
        ]
        if tables:
            raise StateError(
                f"the state database {shown} is not OpsMap's (no schema_version table; it "
                f"holds {', '.join(tables)}): refusing to use it; give an empty database"
            )
        return 0
    rows = conn.execute("SELECT version FROM schema_version").fetchall()
    if len(rows) != 1 or not isinstance(rows[0][0], int):
        raise StateError(
            f"the state database {shown} is damaged (schema_version holds {len(rows)} rows)"
        )
    return rows[0][0]
