"""The state store in PostgreSQL (``opsmap run --state postgresql://…``).

:class:`PostgresStore` holds the database (:mod:`reconciler.store.postgres.owner`: one
process at a time, a term that fences its writes), checks and migrates its schema
(:mod:`reconciler.store.postgres.schema`), and owns the pool of connections
(:mod:`reconciler.store.postgres.db`) that the journal and the outbox use; nobody else
sees a connection. Tables and behaviour are SQLite's (:mod:`reconciler.store.sqlite`):
the contract tests run against both.

The protocol is synchronous; every call is a round trip or two, so it is made from a
worker thread, never on the event loop (:attr:`PostgresStore.blocks`: the callers go
through :class:`reconciler.store.calls.StateCalls`, the check rows through the
reconciler's own thread); while the database cannot be reached, calls fail at once rather
than wait (see :mod:`~reconciler.store.postgres.db`). Writes that fail are
:class:`~reconciler.store.writes.StateWriteError`, retried by their callers, as with
SQLite. The URL's password is never shown: errors and logs name the masked URL.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from reconciler.clock import Clock, RealClock
from reconciler.store import statedir
from reconciler.store.postgres.db import Database
from reconciler.store.postgres.journal import PostgresJournal
from reconciler.store.postgres.outbox import PostgresOutbox
from reconciler.store.postgres.owner import Owner
from reconciler.store.postgres.replicas import LEASE_S, Replicas
from reconciler.store.postgres.schema import SCHEMA_VERSION
from reconciler.store.postgres.url import ConnInfoError, masked, parameters, secrets
from reconciler.store.protocol import (
    CHECK_COLUMNS,
    CheckId,
    CheckRow,
    StateError,
    StoreError,
    decode_check_row,
    encode_check_id,
    encode_check_row,
)
from reconciler.store.text import from_json, from_stored, to_json, to_stored
from reconciler.store.writes import StateWrites

log = logging.getLogger(__name__)

_UPDATED_COLUMNS = CHECK_COLUMNS[4:]
_CHECK_COLUMNS = ", ".join(CHECK_COLUMNS)


class PostgresStore:
    """:class:`~reconciler.store.protocol.StateStore` in the database at ``url``.

    StateError (one line, password masked) when the database cannot be reached, is held
    by another process, is not OpsMap's or was written by a newer OpsMap."""

    def __init__(
        self,
        url: str,
        *,
        state_dir: Path | None = None,
        replica: str | None = None,
        lease_s: float = LEASE_S,
        clock: Clock | None = None,
    ) -> None:
        self.shown = masked(url)
        try:
            parameters(url)
        except ConnInfoError as exc:
            raise StateError(str(exc)) from None
        hidden = secrets(url)  # what every message about the database is scrubbed of
        self._clock = clock or RealClock()
        self._writes = StateWrites(clock=self._clock)
        self._claim: statedir.StateDirLock | None = None
        if state_dir is not None:
            try:
                self._claim = statedir.claim(state_dir)
            except statedir.StateDirError as exc:
                raise StateError(str(exc)) from exc
        try:
            self._owner = Owner.acquire(
                url, self.shown, hidden=hidden, replicas=replica is not None
            )
        except StateError:
            self._release_dir(refused=True)
            raise
        self._db = Database(url, shown=self.shown, hidden=hidden, writes=self._writes)
        try:
            self._db.open()
            if self._claim is not None:
                self._claim.adopt()
        except (StoreError, statedir.StateDirError) as exc:
            self._db.close()
            self._owner.release()
            self._release_dir()
            raise StateError(str(exc)) from exc
        self.replicas: Replicas | None = None
        """This replica's membership and lease (replicas only: see ``replica``)."""
        if replica is None:
            self._db.fence = self._owner.fence
        else:  # the id names the replica and this run of it (a restart is another member)
            self.replicas = Replicas(
                self._db,
                owner_term=self._owner.term,
                name=replica,
                lease_s=lease_s,
                replica_id=f"{replica}-{uuid.uuid4().hex[:8]}",
            )
            self._db.fence = self.replicas.fence
        if self._owner.migrated_from < SCHEMA_VERSION:
            log.info("state: database %s at schema %d (was %d)", self.shown, SCHEMA_VERSION,
                     self._owner.migrated_from)  # fmt: skip
        self._journal = PostgresJournal(self._db, wall=self._clock.wall)
        self._outbox = PostgresOutbox(self._db, wall=self._clock.wall)

    @property
    def term(self) -> int:
        """This process's term: one more than the last holder's."""
        return self._owner.term

    @property
    def writes(self) -> StateWrites:
        return self._writes

    @property
    def blocks(self) -> bool:
        """True: every call is a round trip, made from a worker thread
        (:class:`reconciler.store.calls.StateCalls`), never on the event loop."""
        return True

    @property
    def journal(self) -> PostgresJournal:
        return self._journal

    @property
    def outbox(self) -> PostgresOutbox:
        return self._outbox

    def update_check_rows(self, rows: Sequence[CheckRow], *, removed: Sequence[CheckId]) -> None:
        """The rows that changed (from a worker thread), upserted by ``COPY`` into a
        temporary table, in one transaction; not fenced, as :meth:`write_check_rows`."""
        with self._db.write("checks", fenced=False) as cur:
            if removed:
                cur.executemany(
                    "DELETE FROM check_status"
                    " WHERE map = %s AND component = %s AND check_name = %s AND host = %s",
                    [encode_check_id(check) for check in removed],
                )
            if not rows:
                return
            cur.execute("CREATE TEMPORARY TABLE changed_checks (LIKE check_status) ON COMMIT DROP")
            with cur.copy(f"COPY changed_checks ({_CHECK_COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(encode_check_row(row))
            updates = ", ".join(f"{c} = excluded.{c}" for c in _UPDATED_COLUMNS)
            cur.execute(
                f"INSERT INTO check_status ({_CHECK_COLUMNS})"  # noqa: S608 - our column names
                f" SELECT {_CHECK_COLUMNS} FROM changed_checks"
                f" ON CONFLICT (map, component, check_name, host) DO UPDATE SET {updates}"
            )

    def close(self) -> None:
        if self.replicas is not None:
            self.replicas.leave()
        self._db.close()
        self._owner.release()
        self._release_dir()

    def _release_dir(self, *, refused: bool = False) -> None:
        if self._claim is not None:
            self._claim.release(refused=refused)
            self._claim = None

    def get_meta(self) -> dict[str, object]:
        with self._db.read("read meta values") as cur:
            rows = cur.execute("SELECT key, value FROM meta").fetchall()
        return {from_stored(str(key)): from_json(value) for key, value in rows}

    def set_meta(self, values: Mapping[str, object], *, what: str = "meta") -> None:
        """Fenced as a cursor (it decides which requests are history), not as meta: the
        revisions' state is every replica's observation, as the check rows are."""
        encoded = [(to_stored(key), to_json(value)) for key, value in values.items()]
        with self._db.write(what, fenced=what == "cursor") as cur:
            cur.executemany(
                "INSERT INTO meta (key, value) VALUES (%s, %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                encoded,
            )

    def get_cursor(self, name: str) -> str | None:
        with self._db.read("read a cursor") as cur:
            row = cur.execute(
                "SELECT value FROM meta WHERE key = %s", (to_stored(name),)
            ).fetchone()
        value = None if row is None else from_json(row[0])
        return value if isinstance(value, str) else None

    def set_cursor(self, name: str, sha: str) -> None:
        self.set_meta({name: sha}, what="cursor")

    def load_check_rows(self) -> list[CheckRow]:
        with self._db.read("read check statuses") as cur:
            rows = cur.execute(f"SELECT {_CHECK_COLUMNS} FROM check_status").fetchall()  # noqa: S608
        return [decode_check_row(row) for row in rows]

    def write_check_rows(self, rows: Sequence[CheckRow]) -> None:
        """Replace the stored statuses with ``rows`` (from a worker thread: the pool is
        thread-safe), in one transaction by ``COPY``; not fenced (they are observations,
        and a later write replaces them)."""
        with self._db.write("checks", fenced=False) as cur:
            cur.execute("DELETE FROM check_status")
            with cur.copy(f"COPY check_status ({_CHECK_COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(encode_check_row(row))
