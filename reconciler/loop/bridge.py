"""The loop's heartbeat, and other threads' way onto the reconciler's event loop.

The HTTP server runs on the loop itself (:mod:`reconciler.server.http`): it builds its
snapshots there, between other callbacks, and encodes them in worker threads. What other
threads still need is here: :meth:`LoopBridge.call_soon` (a webhook or a file watcher
asking for a fetch), and the heartbeat the loop keeps current, which says whether the loop
keeps up: a tick that comes late by more than :data:`STALL_S` means the loop was blocked
meanwhile, and ``/healthz`` says so, with how long, for :data:`STALL_SHOWN_S` after.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
from collections.abc import Callable, Iterator

HEARTBEAT_S = 0.25
"""How often the loop notes that it is running (real time, whatever the :class:`Clock`)."""
STALL_S = 3.0
"""The loop is unhealthy when it has not ticked for this long."""
STALL_SHOWN_S = 10.0
"""How long after the loop was blocked ``/healthz`` still reports it: a probe served on the
loop is only answered once the loop is free again, so it must be told what happened."""


class LoopBridge:
    """The heartbeat of the loop, and callbacks run on it from any thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._last_tick: float | None = None
        """``time.monotonic()`` of the loop's last heartbeat; read by other threads."""
        self._last_stall: tuple[float, float] | None = None
        """When the loop was last found blocked for over :data:`STALL_S`, and how long."""
        self._heartbeat: asyncio.TimerHandle | None = None

    def attach(self) -> None:
        """On the loop, as it starts: this loop runs the callbacks; the heartbeat starts."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._last_tick = None
        self._tick()

    def detach(self) -> None:
        """As the loop stops: no heartbeat any more, so the loop reads as not running."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        self._last_tick = None

    @property
    def on_loop(self) -> bool:
        """Whether the caller runs on the loop's own thread."""
        return self._loop_thread is not None and threading.get_ident() == self._loop_thread

    @property
    def foreign_thread(self) -> bool:
        """Whether the loop runs and the caller is another thread (which must not touch
        the live state)."""
        return self._loop_thread is not None and threading.get_ident() != self._loop_thread

    def _tick(self) -> None:
        """The heartbeat: runs on the loop every :data:`HEARTBEAT_S` while the loop is free."""
        assert self._loop is not None
        now = time.monotonic()
        if self._last_tick is not None and now - self._last_tick > STALL_S:
            self._last_stall = (now, now - self._last_tick)
        self._last_tick = now
        self._heartbeat = self._loop.call_later(HEARTBEAT_S, self._tick)

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the loop soon; from any thread, nothing when it is not running."""
        if self._loop is None or self._loop.is_closed():
            return
        if self.on_loop:
            self._loop.call_soon(callback)
        else:
            self._loop.call_soon_threadsafe(callback)

    def loop_problem(self) -> str | None:
        """Why the loop is not running or not keeping up; None when it is. Any thread, no wait."""
        last, loop = self._last_tick, self._loop
        if last is None or loop is None or loop.is_closed():
            return "the reconciler's event loop is not running"
        now = time.monotonic()
        behind = now - last
        if behind > STALL_S:
            return f"event loop has not ticked for {behind:.1f} s"
        stall = self._last_stall
        if stall is not None and now - stall[0] < STALL_SHOWN_S:
            return f"event loop was blocked for {stall[1]:.1f} s, {now - stall[0]:.1f} s ago"
        return None


@contextlib.contextmanager
def no_collection() -> Iterator[None]:
    """No cyclic garbage collection meanwhile, as while a snapshot is built: its plain
    dicts and lists are freed by reference counting, and a collection would only walk
    them (holding the loop, and every thread)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
