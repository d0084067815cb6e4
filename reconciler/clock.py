"""Time for the reconciler: the real clocks, or a virtual one for tests.

One :class:`Clock` is threaded through the service: every interval, retry and backoff
waits through it and every duration is measured on it (:meth:`Clock.now`, monotonic),
and every timestamp the reconciler stores or shows is read from it (:meth:`Clock.wall`,
epoch seconds). So a test can run hours of schedule in virtual time with
:class:`VirtualClock` (as trio's ``MockClock`` or kopf's ``looptime`` do), its
timestamps moving with it, and never sleep for real.

What measures the machine itself stays on real time: the event loop's heartbeat (a
stalled loop is a real-time fact) and the deadlines of git and SSH I/O.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch (UTC): for timestamps, never for durations."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0))


class VirtualClock:
    """A clock that moves only when a test calls :meth:`advance`.

    Its wall time starts at ``wall_start`` (default: the real time when it is made) and
    moves with :meth:`now`.
    """

    def __init__(self, start: float = 0.0, *, wall_start: float | None = None) -> None:
        self._now = start
        self._wall_offset = (time.time() if wall_start is None else wall_start) - start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), future))
        await future

    @property
    def sleepers(self) -> int:
        return sum(not f.done() for _, _, f in self._sleepers)

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its own instant, in order."""
        target = self._now + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            when, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, when)
            if not future.done():
                future.set_result(None)
            await settle()
        self._now = target
        await settle()


async def settle(rounds: int = 20) -> None:
    """Let every ready task run until the loop has nothing more to do right now."""
    for _ in range(rounds):
        await asyncio.sleep(0)
