"""Other threads' way onto the reconciler's event loop: the heartbeat and the snapshots.

The HTTP server and the Prometheus collector run in threads of their own, while the
loop's state (statuses, revisions, the repo) is only ever touched on the loop. A
:class:`LoopBridge` is what they share: the heartbeat the loop keeps current (so
``/healthz`` answers at once, a blocked loop included), a build run on the loop with a
timeout whose error says why, and the one status document that concurrent readers share
while it is fresh.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

SNAPSHOT_TIMEOUT_S = 5.0
"""How long another thread waits for the loop to build a snapshot before giving up."""
SNAPSHOT_REUSE = 4.0
"""Other threads get the last status document again while it is younger than this many
times what it took to build: however often it is read, building it takes at most a fifth
of the loop's time (a small repo's, built in a millisecond, is always fresh)."""
HEARTBEAT_S = 0.25
"""How often the loop notes that it is running (real time, whatever the :class:`Clock`)."""
STALL_S = 3.0
"""The loop is unhealthy when it has not ticked for this long."""


class LoopBridge:
    """Runs builds on the loop for other threads; ``busy_reason()`` explains a timeout."""

    def __init__(self, busy_reason: Callable[[], str | None]) -> None:
        self._busy_reason = busy_reason
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._last_tick: float | None = None
        """``time.monotonic()`` of the loop's last heartbeat; read by other threads."""
        self._heartbeat: asyncio.TimerHandle | None = None
        self._pending_status: concurrent.futures.Future[bytes] | None = None
        self._status_lock = threading.Lock()
        self._last_status: tuple[float, float, bytes] | None = None
        """When the last status document was finished, what it cost to build, the JSON."""

    def attach(self) -> None:
        """On the loop, as it starts: this loop runs the builds; the heartbeat starts."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._tick()

    def detach(self) -> None:
        """As the loop stops: no heartbeat any more, so the loop reads as not running."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        self._last_tick = None

    def _tick(self) -> None:
        """The heartbeat: runs on the loop every :data:`HEARTBEAT_S` while the loop is free."""
        assert self._loop is not None
        self._last_tick = time.monotonic()
        self._heartbeat = self._loop.call_later(HEARTBEAT_S, self._tick)

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the loop soon; from any thread, nothing when it is not running."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(callback)

    def loop_problem(self) -> str | None:
        """Why the loop is not running or not keeping up; None when it is. Any thread, no wait."""
        last, loop = self._last_tick, self._loop
        if last is None or loop is None or loop.is_closed():
            return "the reconciler's event loop is not running"
        behind = time.monotonic() - last
        if behind > STALL_S:
            return f"event loop has not ticked for {behind:.1f} s"
        return None

    def build(self, build: Callable[[], T], *, timeout: float | None = None) -> T:
        """``build()`` run on the loop whichever thread asks, without garbage collection.

        Raises :class:`TimeoutError`, with the reason, when the loop does not get to it
        within ``timeout`` (default :data:`SNAPSHOT_TIMEOUT_S`).
        """
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        built = self._on_loop(future, lambda: _quietly(build), timeout)
        return _quietly(build) if built is None else built

    def shared_document(self, build: Callable[[], bytes], *, timeout: float | None = None) -> bytes:
        """The bytes ``build()`` makes on the loop, shared by threads that ask meanwhile.

        Threads that ask while one is being built share it, and get the last one again
        while it is fresh (:data:`SNAPSHOT_REUSE`). Only bytes leave the loop: the dicts
        of a large snapshot are freed at once, never walked by a garbage collection
        (which would stop every thread, /healthz's too). :class:`TimeoutError` as
        :meth:`build`.
        """
        with self._status_lock:
            last = self._last_status
            if last is not None and time.monotonic() - last[0] < SNAPSHOT_REUSE * last[1]:
                return last[2]
            future = self._pending_status
            if future is None or future.done():
                future = self._pending_status = concurrent.futures.Future()
                fresh = True
            else:
                fresh = False
        if not fresh:
            return self._wait(future, timeout)
        built = self._on_loop(future, lambda: self._timed(build), timeout)
        return self._timed(build) if built is None else built

    def _timed(self, build: Callable[[], bytes]) -> bytes:
        started = time.monotonic()
        body = _quietly(build)
        finished = time.monotonic()
        with self._status_lock:
            self._last_status = (finished, finished - started, body)
        return body

    def _on_loop(
        self,
        future: concurrent.futures.Future[T],
        build: Callable[[], T],
        timeout: float | None,
    ) -> T | None:
        """``build()`` run on the loop, its result through ``future``; None when the caller
        is the loop's own thread or there is no running loop (then the caller builds)."""
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread or loop.is_closed():
            return None

        def run() -> None:
            try:
                future.set_result(build())
            except Exception as exc:  # handed to the waiting threads
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return self._wait(future, timeout)

    def _wait(self, future: concurrent.futures.Future[T], timeout: float | None) -> T:
        timeout = SNAPSHOT_TIMEOUT_S if timeout is None else timeout
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(
                f"the event loop did not build the status within {timeout:g} s"
                f" ({self._busy_reason() or 'it is busy'})"
            ) from None


def _quietly(build: Callable[[], T]) -> T:
    with _no_collection():
        return build()


@contextlib.contextmanager
def _no_collection() -> Iterator[None]:
    """No cyclic garbage collection meanwhile, as while a snapshot is built: its plain
    dicts and lists are freed by reference counting, and a collection would only walk
    them (stopping every thread, /healthz's too)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
