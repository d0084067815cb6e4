"""How a process holds the state database, and the term that fences its writes.

Two ways, which exclude each other through the session advisory lock :data:`OWNER_LOCK`,
held on a connection of the process's own (outside the pool) and let go with its session
however the process ends:

- **one process** (``mode = 'single'``, the default): the lock exclusively, so a second
  ``opsmap run`` on the same database is refused, naming the holder. Taking it bumps
  ``owner.term``; every journal, audit and cursor write checks, in its own
  transaction and holding the ``owner`` row (``FOR SHARE``), that the term is still this
  process's (:meth:`Owner.fence`);
- **replicas** (``mode = 'replicas'``): the lock shared, so any number of replicas, and no
  single process meanwhile. Writes are fenced by the leader's lease
  (:mod:`reconciler.store.postgres.replicas`), and by ``owner.term`` as it was when the
  replica started.

The first holder of a kind after the other kind bumps ``owner.term``: a process of the
other kind that lost its lock (its connection cut by a database restart) but runs on then
finds a newer term and writes no more. Either a write commits before the bump's
transaction, or it sees the new term: the row lock orders them.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from datetime import UTC, datetime
from typing import Any

import psycopg

from reconciler.store.postgres import schema
from reconciler.store.postgres.db import Cursor, Fenced, connect, reason
from reconciler.store.protocol import StateError

OWNER_LOCK = 0x4F70734D0000
"""``pg_advisory_lock`` key of the database's holder (advisory locks are per database)."""


class Owner:
    """This process's hold on the database (see the module's docstring)."""

    def __init__(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        term: int,
        migrated_from: int,
        *,
        replicas: bool,
    ) -> None:
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = conn
        self.term = term
        """``owner.term`` when this process took the database."""
        self.migrated_from = migrated_from
        """The schema version the database had when opened (0: it was new)."""
        self.replicas = replicas

    @classmethod
    def acquire(
        cls, url: str, shown: str, *, hidden: tuple[str, ...] = (), replicas: bool = False
    ) -> Owner:
        """Connect, take the lock, check and migrate the schema, bump the term if due.

        StateError (one line) if the database cannot be reached, is held the other way
        (or by another single process), is not OpsMap's or was written by a newer OpsMap."""
        try:
            conn = connect(url)
        except psycopg.Error as exc:
            raise StateError(
                f"cannot connect to the state database {shown}: {reason(exc, hidden)}"
            ) from exc
        try:
            take = "pg_try_advisory_lock_shared" if replicas else "pg_try_advisory_lock"
            row = conn.execute(f"SELECT {take}(%s)", (OWNER_LOCK,)).fetchone()
            if row is None or not row[0]:
                held = "by another OpsMap" if not replicas else "by a single OpsMap"
                raise StateError(
                    f"the state database {shown} is in use {held} ({_holder(conn)}); "
                    "one reconciler per database, or replicas only"
                )
            migrated_from = schema.prepare(conn, shown)
            term = _take(conn, replicas=replicas)
            if term is None:
                raise StateError(f"the state database {shown} is damaged (no owner row)")
        except StateError:
            conn.close()
            raise
        except psycopg.Error as exc:
            conn.close()
            raise StateError(
                f"cannot use the state database {shown}: {reason(exc, hidden)}"
            ) from exc
        return cls(conn, term, migrated_from, replicas=replicas)

    def fence(self, cur: Cursor) -> None:
        """In a write's transaction: :class:`Fenced` unless ``owner.term`` is still this
        process's (the ``owner`` row held until the transaction ends)."""
        row = cur.execute("SELECT term FROM owner WHERE id = 1 FOR SHARE").fetchone()
        now = None if row is None else int(row[0])
        if now != self.term:
            raise Fenced(
                f"another OpsMap holds the state database now (term {now}, this one's "
                f"{self.term}): this process writes no more"
            )

    def release(self) -> None:
        """Let go of the database: its lock first (a session that is closed releases it
        only when the server's backend exits, after this returns: a successor at once
        would find it still held), then the session."""
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.execute("SELECT pg_advisory_unlock_all()")
            self._conn.close()
            self._conn = None


def _take(conn: psycopg.Connection[tuple[Any, ...]], *, replicas: bool) -> int | None:
    """Bump ``owner.term`` (one process: always; replicas: the first after a single
    process); the term now."""
    me, now = _me(), datetime.now(UTC).timestamp()
    with conn.transaction():
        if not replicas:
            row = conn.execute(
                "UPDATE owner SET term = term + 1, holder = %s, since = %s, mode = 'single'"
                " WHERE id = 1 RETURNING term",
                (me, now),
            ).fetchone()
            return None if row is None else int(row[0])
        conn.execute(
            "UPDATE owner SET term = term + 1, holder = %s, since = %s, mode = 'replicas'"
            " WHERE id = 1 AND mode <> 'replicas'",
            (me, now),
        )
        row = conn.execute("SELECT term FROM owner WHERE id = 1").fetchone()
        return None if row is None else int(row[0])


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
