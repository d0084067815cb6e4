"""The events of ``GET /api/v1/events``: a bounded ring of recent events, and subscribers.

Everything runs on the event loop and never waits: :meth:`EventBroker.publish` encodes an
event once (its Server-Sent Events text), keeps it in a ring of the last
:attr:`EventBroker.buffer` events, and wakes every subscriber. A subscriber is a place in
that ring (its queue is the part after it, read and filtered by its own stream, so a
publish costs a wake-up per subscriber, and a filter call for a filtered one that is
caught up: an event it refuses moves it on unwoken); one that falls more than
:attr:`EventBroker.client_queue` events behind is dropped (its stream ends; the browser
reconnects and resumes), never buffered without bound.

Ids are integers, increasing, and do not repeat across restarts (the first is the start
time in microseconds), so that a ``Last-Event-ID`` from an earlier process, or older than
the ring, is recognised: the subscriber gets a ``reset`` event (refetch everything) instead
of a silent gap.
"""

from __future__ import annotations

import asyncio
import itertools
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
    """One stream's place in the ring: the id it has sent up to, or why it ends.

    Its queue is the part of the ring after that id, so it costs no memory of its own;
    :meth:`EventBroker.publish` ends it when that part grows past its limit."""

    def __init__(self, broker: EventBroker, accept: Accept | None, *, after: int) -> None:
        self._broker = broker
        self.accept = accept
        self.after = after
        """The id of the last event taken (or skipped by the filter)."""
        self._wake = asyncio.Event()
        self.reset: str | None = None
        """Set when the stream must begin with a ``reset`` event: why."""
        self.ended: str | None = None
        """Why the stream ends (dropped, closed); None while it goes on."""

    def end(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
        self._wake.set()

    def take(self) -> list[Event]:
        """The events after :attr:`after` that the filter accepts (none waits)."""
        self._wake.clear()
        if self.ended is not None:
            return []
        events = self._broker.since(self.after)
        self.after = self._broker.last_id
        accept = self.accept
        return events if accept is None else [e for e in events if accept(e)]

    async def wait(self, within_s: float) -> bool:
        """Wait until an event comes or the stream ends; False after ``within_s``."""
        if self.backlog or self.ended is not None:
            return True
        try:
            async with asyncio.timeout(within_s):
                await self._wake.wait()
        except TimeoutError:
            return False
        return True

    @property
    def backlog(self) -> int:
        """Events published since :attr:`after` (0 once ended)."""
        return 0 if self.ended is not None else self._broker.last_id - self.after


class EventBroker:
    """The ring of recent events and the live subscriptions; on the event loop only."""

    def __init__(self, *, buffer: int = BUFFER, client_queue: int = CLIENT_QUEUE) -> None:
        self.buffer = buffer
        self.client_queue = max(1, min(client_queue, buffer))
        """A subscriber's queue is a part of the ring: at most all of it."""
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

    def since(self, after: int) -> list[Event]:
        """The kept events whose id is above ``after`` (ids in the ring are consecutive)."""
        ring = self._ring
        if not ring or after >= ring[-1].id:
            return []
        skip = max(0, after + 1 - ring[0].id)
        return list(itertools.islice(ring, skip, None))

    def publish(self, kind: str, data: Mapping[str, Any]) -> Event:
        """Keep the event and wake every subscriber; one now further behind than its
        queue holds is ended (dropped) and forgotten. A subscriber that has taken every
        event before this one, and whose filter refuses it, is moved past it and not
        woken: the events it is not sent never put it behind (a viewer whose stream were
        dropped by a burst of events it may not see would learn that they came)."""
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        event_id = self._next_id
        self._next_id += 1
        event = Event(event_id, kind, data, wire(event_id, kind, data))
        self._ring.append(event)
        limit = self.client_queue
        behind = []
        for sub in self._subscriptions:
            if sub.after == event_id - 1 and sub.accept is not None and not sub.accept(event):
                sub.after = event_id  # caught up, and not its event: it stays caught up
            elif event_id - sub.after > limit:
                behind.append(sub)
            else:
                sub._wake.set()
        for sub in behind:
            sub.end(f"dropped: more than {limit} events behind")
            self._subscriptions.discard(sub)
            self.dropped += 1
        return event

    def subscribe(self, accept: Accept | None, *, last_id: int | None = None) -> Subscription:
        """A new subscription (``accept``: which events it wants; None: all); with
        ``last_id`` (the client's ``Last-Event-ID``), it begins after that id, or with
        ``reset`` set when the events since are not all kept, or more than a queue holds."""
        sub = Subscription(self, accept, after=self.last_id)
        if self.closed:
            sub.end("the server is stopping")
            return sub
        if last_id is not None and last_id != self.last_id:
            oldest = self._ring[0].id if self._ring else self._next_id
            if last_id > self.last_id or last_id < oldest - 1:
                sub.reset = "the events since that id are not kept: fetch the state again"
            elif self.last_id - last_id > self.client_queue:
                sub.reset = "too many events since that id: fetch the state again"
            else:
                sub.after = last_id
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
