"""A write to the state database that fails is temporary: reported, retried, never fatal.

A full disk, an I/O error or a database locked too long make SQLite raise
``sqlite3.OperationalError`` (and the file system ``OSError``). Where the state is written
(:class:`reconciler.store.sqlite.SqliteStore`: checks, meta, journal, outbox), such an
error is translated once, by :meth:`StateWrites.guard`, into :class:`StateWriteError`:
kopf's ``TemporaryError``, the retry semantics in the type (``delay`` is the backoff
before the next attempt). Nothing was written then (SQLite rolled the transaction back),
so writing the same thing again later is safe.

:class:`StateWrites` keeps which kinds of write (``what``: journal, audit, meta, cursor,
checks) fail now and why: it logs once per reason and once when writing works again,
counts every failure (``opsmap_state_write_errors_total{what}``), and gives
``/healthz`` its reason. Thread-safe: check rows are written by a worker thread.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from agentless.backoff import Backoff
from reconciler.clock import Clock, RealClock

log = logging.getLogger(__name__)
T = TypeVar("T")

WHATS = ("journal", "audit", "meta", "cursor", "checks")
"""What is written to the state database, as the ``what`` label of the error counter."""
RETRY = Backoff(base_s=0.5, factor=2.0, max_s=15.0, jitter=0.5)
"""Backoff between attempts at a failing write: one failed write is cheap, and the next
attempt after space returns comes within seconds."""


class StateWriteError(Exception):
    """A write to the state database failed and nothing of it was stored: retry later.

    ``what`` is the kind of state (one of :data:`WHATS`), ``reason`` SQLite's or the
    system's message, ``delay`` the seconds to wait before the next attempt.
    """

    def __init__(self, what: str, reason: str, *, delay: float = 0.0) -> None:
        super().__init__(f"cannot write {what} to the state database: {reason}")
        self.what = what
        self.reason = reason
        self.delay = delay


@dataclass
class _Failing:
    reason: str
    since: float
    failures: int


class StateWrites:
    """Which kinds of state write fail now, and why (see the module's docstring)."""

    def __init__(
        self,
        *,
        backoff: Backoff = RETRY,
        rng: random.Random | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._backoff = backoff
        self._clock = clock or RealClock()
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._failing: dict[str, _Failing] = {}
        self.on_failure: Callable[[str], None] | None = None
        """Called with ``what`` on every failure (the reconciler counts them)."""

    @contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """Translate a failed write of ``what`` into :class:`StateWriteError`; note success."""
        try:
            yield
        except (sqlite3.OperationalError, OSError) as exc:
            raise self.failed(what, exc) from exc
        self.succeeded(what)

    def failed(self, what: str, exc: BaseException) -> StateWriteError:
        """Note a failure of ``what``; the error to raise, with the delay before a retry."""
        reason = str(exc) or type(exc).__name__
        with self._lock:
            current = self._failing.get(what)
            if current is None:
                current = self._failing[what] = _Failing(reason, self._clock.wall(), 0)
                changed = True
            else:
                changed = current.reason != reason
                current.reason = reason
            current.failures += 1
            failures = current.failures
        if changed:
            log.error("state: cannot write %s: %s (retried with backoff)", what, reason)
        if self.on_failure is not None:
            self.on_failure(what)
        return StateWriteError(what, reason, delay=self._backoff.delay(failures, self._rng))

    def succeeded(self, what: str) -> None:
        if what not in self._failing:  # racy read, exact below: the common case is cheap
            return
        with self._lock:
            gone = self._failing.pop(what, None)
        if gone is not None:
            log.warning(
                "state: %s written again, after %d failed attempt(s) in %.0f s",
                what,
                gone.failures,
                self._clock.wall() - gone.since,
            )

    def forget(self, whats: Sequence[str]) -> None:
        """This process writes ``whats`` no more (a replica that stopped leading): their
        failures are no longer its problem, nor its ``/healthz``'s."""
        with self._lock:
            for what in whats:
                self._failing.pop(what, None)

    def failing(self) -> dict[str, dict[str, object]]:
        """What fails now: ``{what: {reason, since (epoch), failures}}``."""
        with self._lock:
            return {
                what: {"reason": f.reason, "since": f.since, "failures": f.failures}
                for what, f in sorted(self._failing.items())
            }

    def problem(self) -> str | None:
        """The reason for ``/healthz``, None while every write works."""
        with self._lock:
            if not self._failing:
                return None
            parts = [f"{what}: {f.reason}" for what, f in sorted(self._failing.items())]
        return "state writes failing (" + "; ".join(parts) + ")"


async def wait_written(
    write: Callable[[], Awaitable[T]],
    *,
    clock: Clock,
    waiting: Callable[[StateWriteError], None] | None = None,
) -> T:
    """What ``write()`` gives when awaited, awaiting it again after each
    :class:`StateWriteError`'s delay (on ``clock``: virtual time in tests); ``waiting`` is
    told of each failure. ``write`` is a coroutine function so that a store that blocks is
    called in a thread (:class:`~reconciler.store.calls.StateCalls`)."""
    while True:
        try:
            return await write()
        except StateWriteError as exc:
            if waiting is not None:
                waiting(exc)
            await clock.sleep(exc.delay)
