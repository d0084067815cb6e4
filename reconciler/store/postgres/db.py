"""The connections to the state database, their timeouts, and what a failure of one means.

:class:`Database` owns a :class:`psycopg_pool.ConnectionPool` (thread-safe: every call
comes from a worker thread, :mod:`reconciler.store.calls`, never from the event loop).
Every wait is bounded: connecting (``connect_timeout``), a connection from the pool
(:data:`POOL_WAIT_S`), a statement (``statement_timeout``), a lock (``lock_timeout``), a
dead peer (``tcp_user_timeout`` and keepalives). While the database cannot be reached,
calls fail at once for :data:`FAIL_FAST_S` after a failure, and past that wait only
:data:`DOWN_WAIT_S` for the connection the pool makes in the background, so that the
threads waiting on it are few and soon free while the database is away. A database that
hangs (stopped: no statement timeout fires, the kernel still acknowledges) holds a thread
until it answers: the loop gives up awaiting it first
(:data:`reconciler.store.calls.CALL_TIMEOUT_S`).

A write goes through :meth:`Database.write`: one transaction, fenced by the store's term
when asked (:mod:`reconciler.store.postgres.owner`). It fails as
:class:`~reconciler.store.writes.StateWriteError` (through the store's
:class:`~reconciler.store.writes.StateWrites`, so it is logged once, counted and shown by
``/healthz``) when the database is unreachable, restarting, out of space, timed out or
taken over by another process: temporary, retried by the caller, nothing of it stored.
Any other database error is a :class:`~reconciler.store.protocol.StoreError`. A read
(:meth:`Database.read`) fails the same way when the database cannot be reached and a
``what`` is given (a read the caller retries, as the journal's), else StoreError.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool

from reconciler.store.postgres.url import scrubbed
from reconciler.store.protocol import StoreError
from reconciler.store.writes import StateWrites

Cursor = psycopg.Cursor[tuple[Any, ...]]

CONNECT_TIMEOUT_S = 5
"""libpq's ``connect_timeout`` (whole seconds, at least 2)."""
STATEMENT_TIMEOUT_MS = 10_000
LOCK_TIMEOUT_MS = 5_000
IDLE_IN_TRANSACTION_MS = 60_000
TCP_USER_TIMEOUT_MS = 10_000
POOL_WAIT_S = 1.0
"""How long a call waits for a connection from the pool (the database is down past that)."""
DOWN_WAIT_S = 0.05
"""The same wait while the database was found unreachable: the pool goes on connecting in
the background, and a later call finds the connection it made."""
RECONNECT_S = 10.0
"""How long the pool keeps trying to replace a lost connection in the background; past
that, the next call that needs one starts a new attempt."""
FAIL_FAST_S = 1.0
"""After a failure to reach the database, calls fail at once for this long."""
POOL_MAX = 4

TEMPORARY: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,  # unreachable, shutting down, disk full, statement timeout…
    psycopg.InterfaceError,  # the connection was closed under us
    psycopg_pool.PoolTimeout,
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.ReadOnlySqlTransaction,  # a standby, or a primary being demoted
)
"""Failures that pass: writing the same thing again later is safe."""
REFUSED: tuple[type[Exception], ...] = (psycopg.Error, UnicodeError, OverflowError)
"""Any other failure, or a value the driver cannot send (text not in the store's encoding,
a number out of range): a StoreError, that call's (and its record's) only."""


class _Down(psycopg_pool.PoolTimeout):
    """Failed at once: the database could not be reached a moment ago."""


class _Failure(Exception):
    """A failure's one-line reason, as :class:`StateWrites` reports it."""


class Fenced(Exception):
    """Another process holds the database now (a newer term): this one must not write."""


def connection_kwargs() -> dict[str, Any]:
    """libpq parameters added to every connection: its timeouts and its name."""
    options = (
        f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout={LOCK_TIMEOUT_MS} "
        f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}"
    )
    return {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "options": options,
        "application_name": "opsmap",
        "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "autocommit": True,
    }


def connect(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    """One connection outside the pool (the owner's), with the same parameters."""
    return psycopg.connect(url, **connection_kwargs())


def reason(exc: BaseException, hidden: tuple[str, ...] = ()) -> str:
    """A one-line reason for ``exc``, with the connection string's secrets (``hidden``,
    :func:`~.url.secrets`) scrubbed: libpq's messages quote what it could not parse."""
    if isinstance(exc, _Down):
        return "the database could not be reached a moment ago"
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return "no connection to the database within the timeout (unreachable or restarting)"
    text = " ".join(scrubbed(str(exc), hidden).split())
    return text or type(exc).__name__


class Database:
    """The pool of connections to the database at ``url`` and its error translation;
    ``shown`` names the database (password masked). :attr:`fence` fences writes."""

    def __init__(
        self, url: str, *, shown: str, writes: StateWrites, hidden: tuple[str, ...] = ()
    ) -> None:
        """``hidden``: the connection string's secrets (:func:`~.url.secrets`), scrubbed
        from every message."""
        self.shown = shown
        self._hidden = hidden
        self.fence: Callable[[Cursor], None] | None = None
        """Called first in a fenced write's transaction: raises :class:`Fenced` when this
        process may not write (set by the store: its owner's or its replica's)."""
        self._writes = writes
        self._down_until = 0.0
        self._down = False
        self._lock = threading.Lock()
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = (
            psycopg_pool.ConnectionPool(
                url,
                kwargs=connection_kwargs(),
                min_size=1,
                max_size=POOL_MAX,
                timeout=POOL_WAIT_S,
                reconnect_timeout=RECONNECT_S,
                name="opsmap-state",
                open=False,
            )
        )

    def open(self) -> None:
        """Fill the pool (the database was reached once already, by the owner)."""
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S * 2)
        except psycopg_pool.PoolTimeout as exc:
            self._pool.close()
            raise StoreError(f"cannot connect to the state database {self.shown}") from exc

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def write(self, what: str, *, fenced: bool = True) -> Iterator[Cursor]:
        """A cursor in one transaction that writes ``what``; committed when the block ends.

        ``fenced``: the transaction first calls :attr:`fence` (:class:`Fenced`:
        StateWriteError), which checks that this process may still write, holding the
        rows that say so until the transaction ends."""
        try:
            with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
                if fenced:
                    if self.fence is None:
                        raise Fenced("this process does not hold the state database")
                    self.fence(cur)
                yield cur
        except Fenced as exc:
            raise self._writes.failed(what, exc) from None
        except TEMPORARY as exc:
            self._unreachable(exc)
            raise self._writes.failed(what, _Failure(reason(exc, self._hidden))) from exc
        except REFUSED as exc:
            raise StoreError(
                f"cannot write {what} to {self.shown}: {reason(exc, self._hidden)}"
            ) from exc
        self._writes.succeeded(what)

    @contextmanager
    def read(self, doing: str, *, what: str | None = None) -> Iterator[Cursor]:
        """A cursor (autocommit) for a read; see the module's docstring for its errors."""
        try:
            with self._connection() as conn, conn.cursor() as cur:
                yield cur
        except TEMPORARY as exc:
            self._unreachable(exc)
            if what is not None:
                raise self._writes.failed(what, _Failure(reason(exc, self._hidden))) from exc
            raise StoreError(
                f"cannot {doing} from {self.shown}: {reason(exc, self._hidden)}"
            ) from exc
        except REFUSED as exc:
            raise StoreError(
                f"cannot {doing} from {self.shown}: {reason(exc, self._hidden)}"
            ) from exc

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        if time.monotonic() < self._down_until:
            raise _Down("the state database was unreachable a moment ago")
        with self._pool.connection(timeout=DOWN_WAIT_S if self._down else POOL_WAIT_S) as conn:
            yield conn
            self._down = False

    def _unreachable(self, exc: BaseException) -> None:
        """Fail fast for a moment when the failure says the database cannot be reached."""
        if isinstance(exc, _Down | psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable):
            return  # failed fast already; or reached, but slow: the next call tries again
        with self._lock:
            self._down = True
            self._down_until = max(self._down_until, time.monotonic() + FAIL_FAST_S)
