"""Which process holds the state database, and its term: the fence of every write.

A process holds the database while its own connection (outside the pool) holds the
session advisory lock :data:`OWNER_LOCK`: a second ``opsmap run`` on the same database is
refused, naming the holder; a process that dies (however) lets go of it with its
session. Taking the lock bumps ``owner.term`` and records the holder, in one transaction.

Every journal, audit, meta and cursor write checks, in its own transaction and holding the
``owner`` row (``FOR SHARE``), that the term is still this process's
(:meth:`reconciler.store.postgres.db.Database.write`). If this process's lock was lost
(its connection cut by a database restart) and another process took the database, that
one bumped the term: every later write of this one fails as a
:class:`~reconciler.store.writes.StateWriteError`, so it starts no request and chains no
audit record after a newer holder took over. Either a write commits before the takeover's
transaction, or it sees the new term: the row lock orders them.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from typing import Any

import psycopg

from reconciler.store.postgres import schema
from reconciler.store.postgres.db import connect, reason
from reconciler.store.protocol import StateError

OWNER_LOCK = 0x4F70734D0000
"""``pg_advisory_lock`` key of the database's holder (advisory locks are per database)."""


class Owner:
    """This process's hold on the database (see the module's docstring)."""

    def __init__(self, conn: psycopg.Connection[tuple[Any, ...]], term: int, migrated_from: int):
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = conn
        self.term = term
        self.migrated_from = migrated_from
        """The schema version the database had when opened (0: it was new)."""

    @classmethod
    def acquire(cls, url: str, shown: str) -> Owner:
        """Connect, take the lock, check and migrate the schema, bump the term.

        StateError (one line) if the database cannot be reached, is held by another
        process, is not OpsMap's or was written by a newer OpsMap."""
        try:
            conn = connect(url)
        except psycopg.Error as exc:
            raise StateError(
                f"cannot connect to the state database {shown}: {reason(exc)}"
            ) from exc
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (OWNER_LOCK,)).fetchone()
            if row is None or not row[0]:
                raise StateError(
                    f"the state database {shown} is in use by another OpsMap "
                    f"({_holder(conn)}); one reconciler per database"
                )
            migrated_from = schema.prepare(conn, shown)
            with conn.transaction():
                term_row = conn.execute(
                    "UPDATE owner SET term = term + 1, holder = %s, since = %s WHERE id = 1"
                    " RETURNING term",
                    (_me(), datetime.now(UTC).timestamp()),
                ).fetchone()
            if term_row is None:
                raise StateError(f"the state database {shown} is damaged (no owner row)")
        except StateError:
            conn.close()
            raise
        except psycopg.Error as exc:
            conn.close()
            raise StateError(f"cannot use the state database {shown}: {reason(exc)}") from exc
        return cls(conn, int(term_row[0]), migrated_from)

    def release(self) -> None:
        """Let go of the database (closing the session ends its lock)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _me() -> str:
    started = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started})


def _holder(conn: psycopg.Connection[tuple[Any, ...]]) -> str:
    """``pid 123 on 'host', started …`` of the holder, as far as the database tells."""
    try:
        exists = conn.execute("SELECT to_regclass('owner') IS NOT NULL").fetchone()
        row = (
            conn.execute("SELECT holder FROM owner WHERE id = 1").fetchone()
            if (exists and exists[0])
            else None
        )
        holder = json.loads(str(row[0])) if row else {}
        pid, host, started = int(holder["pid"]), str(holder["host"]), str(holder["started"])
    except (psycopg.Error, ValueError, KeyError, TypeError):
        return "pid unknown: it is starting, or its holder row is unreadable"
    return f"pid {pid} on {host!r}, started {started}"
