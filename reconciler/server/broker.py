"""The events of ``GET /api/v1/events``: a bounded ring of recent events, and subscribers.

Everything runs on the event loop and never waits: :meth:`EventBroker.publish` encodes an
event once (its Server-Sent Events text), keeps it in a ring of the last
:attr:`EventBroker.buffer` events, and appends it to the queue of every subscriber whose
filter accepts it. A subscriber's queue is bounded: one that falls
:attr:`EventBroker.client_queue` events behind is dropped (its stream ends; the browser
reconnects and resumes), never buffered without bound.

Ids are integers, increasing, and do not repeat across restarts (the first is the start
time in microseconds), so that a ``Last-Event-ID`` from an earlier process, or older than
the ring, is recognised: the subscriber gets a ``reset`` event (refetch everything) instead
of a silent gap.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

BUFFER = 1024
"""Recent events kept for resuming."""
CLIENT_QUEUE = 256
"""Events a subscriber may be behind before it is dropped."""
KINDS = ("check", "component", "revision", "request", "action")


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    kind: str
    data: Mapping[str, Any]
    wire: bytes
    """The event as the stream sends it: ``id:``, ``event:``, ``data:`` lines and a blank one."""

    @property
    def map(self) -> str | None:
        value = self.data.get("map")
        return value if isinstance(value, str) else None

    @property
    def component(self) -> str | None:
        value = self.data.get("component")
        return value if isinstance(value, str) else None


def wire(event_id: int | None, kind: str, data: Mapping[str, Any]) -> bytes:
    """One event in the text/event-stream format; the JSON is on one line (``json.dumps``
    escapes every line break a string from a repo or a host may hold)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    body = json.dumps(dict(data), separators=(",", ":"), default=str)
    return f"{head}event: {kind}\ndata: {body}\n\n".encode()


Accept = Callable[[Event], bool]


class Subscription:
    """One stream's queue: the events to send, or why it ends."""

    def __init__(self, accept: Accept, limit: int) -> None:
        self.accept = accept
        self._limit = limit
        self._queue: deque[Event] = deque()
        self._wake = asyncio.Event()
        self.reset: str | None = None
        """Set when the stream must begin with a ``reset`` event: why."""
        self.ended: str | None = None
        """Why the stream ends (dropped, closed); None while it goes on."""

    def offer(self, event: Event) -> None:
        if self.ended is not None or not self.accept(event):
            return
        if len(self._queue) >= self._limit:
            self.end(f"dropped: more than {self._limit} events behind")
            return
        self._queue.append(event)
        self._wake.set()

    def end(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
            self._queue.clear()
        self._wake.set()

    def take(self) -> list[Event]:
        """The events queued now (none waits)."""
        events = list(self._queue)
        self._queue.clear()
        self._wake.clear()
        return events

    async def wait(self, within_s: float) -> bool:
        """Wait until an event is queued or the stream ends; False after ``within_s``."""
        if self._queue or self.ended is not None:
            return True
        try:
            async with asyncio.timeout(within_s):
                await self._wake.wait()
        except TimeoutError:
            return False
        return True

    @property
    def backlog(self) -> int:
        return len(self._queue)


class EventBroker:
    """The ring of recent events and the live subscriptions; on the event loop only."""

    def __init__(self, *, buffer: int = BUFFER, client_queue: int = CLIENT_QUEUE) -> None:
        self.buffer = buffer
        self.client_queue = client_queue
        self._ring: deque[Event] = deque(maxlen=buffer)
        self._next_id = int(time.time() * 1_000_000)
        self._subscriptions: set[Subscription] = set()
        self.dropped = 0
        self.closed = False

    @property
    def last_id(self) -> int:
        """The id of the newest event (one below the first when there is none yet)."""
        return self._next_id - 1

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    def publish(self, kind: str, data: Mapping[str, Any]) -> Event:
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        event_id = self._next_id
        self._next_id += 1
        event = Event(event_id, kind, data, wire(event_id, kind, data))
        self._ring.append(event)
        for sub in list(self._subscriptions):
            sub.offer(event)
            if sub.ended is not None:
                self._subscriptions.discard(sub)
                self.dropped += 1
        return event

    def subscribe(self, accept: Accept, *, last_id: int | None = None) -> Subscription:
        """A new subscription; with ``last_id`` (the client's ``Last-Event-ID``), the
        events after it are queued first, or ``reset`` is set when they are not all kept."""
        sub = Subscription(accept, self.client_queue)
        if self.closed:
            sub.end("the server is stopping")
            return sub
        if last_id is not None and last_id != self.last_id:
            oldest = self._ring[0].id if self._ring else self._next_id
            if last_id > self.last_id or last_id < oldest - 1:
                sub.reset = "the events since that id are not kept: fetch the state again"
            else:
                for event in self._ring:
                    if event.id > last_id:
                        sub.offer(event)
                if sub.ended is not None:  # more missed events than a queue holds
                    sub.ended, sub.reset = None, "too many events since that id"
                    sub.take()
        self._subscriptions.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscriptions.discard(sub)

    def close(self) -> None:
        """Stopping: every stream ends, and none begins."""
        self.closed = True
        for sub in self._subscriptions:
            sub.end("the server is stopping")
        self._subscriptions.clear()
