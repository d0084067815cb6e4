"""``GET /api/v1/events``: the broker's events as Server-Sent Events, for one viewer.

A stream is a coroutine on the loop and a bounded queue (:mod:`.broker`): no thread.
It sends the events its viewer may see (:func:`~reconciler.server.identity.sees_event`),
a ``: heartbeat`` comment when nothing was sent for a while (so proxies and browsers
keep the connection, and a dead client is found), and ends when its client falls too far
behind, stops reading (:mod:`.connections` aborts it), reaches the stream's maximum age
(it reconnects and resumes), or the server stops. A client that reconnects with
``Last-Event-ID`` gets what it missed, or a ``reset`` event (refetch); a ``Last-Event-ID``
that is no event id (ASCII digits) is a ``400``. How many streams a client may hold is
:mod:`.clients`'s to say.

A viewer who sees only part of the events (identities enforced) learns nothing of the
others from the stream's form either. The broker's ids grow by one per event of anyone's
(their gaps would count the hidden ones), and whether the events since an id are still
kept depends on how many of anyone's came since; so such a stream numbers the events it
sends 1, 2, 3…, answers any ``Last-Event-ID`` with ``reset`` (one reason: refetch; the page
refetches whenever its stream opens anyway), and sends its heartbeat after a quiet
interval of what *it* is sent.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterator

from aiohttp import web

from reconciler.loop.view import encode_json
from reconciler.policy.visibility import Visibility
from reconciler.server.broker import Event, EventBroker, Subscription, wire
from reconciler.server.identity import EVERYONE, Viewer, sees_event, sight_of

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0
RETRY_MS = 2000
"""How long a browser waits before it reconnects (the stream's ``retry:``)."""
MAX_BATCH_BYTES = 256 * 1024
"""Queued events written to the socket at once, at most about this much."""
MAX_AGE_S = 600.0
"""A stream ends at this age; its client reconnects (and resumes), so that a client whose
buffers never fill still holds a connection for a bounded time."""
MAX_ID_DIGITS = 19
"""An event id is below 2**63: at most this many digits."""
FILTERED_RESET = "this stream does not resume: fetch the state again"
"""The ``reset`` reason of a filtered viewer's stream, whatever its ``Last-Event-ID``."""


def renumbered(event: Event, number: int) -> bytes:
    """``event`` as a filtered stream sends it: its id is its number on that stream."""
    head = f"id: {event.id}\n".encode()
    return f"id: {number}\n".encode() + event.wire[len(head) :]


class BadLastEventId(ValueError):
    """A ``Last-Event-ID`` that is no event id."""


def last_event_id(request: web.Request) -> int | None:
    """The client's ``Last-Event-ID`` (header, or ``?last_event_id=``); None if absent or
    empty; :class:`BadLastEventId` unless ASCII digits (``str.isdigit`` alone takes ``²``
    and other digits ``int`` refuses)."""
    value = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    value = (value or "").strip(" \t")
    if not value:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= MAX_ID_DIGITS):
        raise BadLastEventId("Last-Event-ID: expected an event id (decimal digits)")
    return int(value)


class EventStreams:
    """The handler of ``GET /api/v1/events``."""

    def __init__(
        self,
        broker: EventBroker,
        visibility: Callable[[], Visibility],
        *,
        heartbeat_s: float = HEARTBEAT_S,
        max_age_s: float = MAX_AGE_S,
    ) -> None:
        self.broker = broker
        self._visibility = visibility
        self.heartbeat_s = heartbeat_s
        self.max_age_s = max_age_s

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:  # read for everyone, so that a malformed one is the client's 400 whoever asks
            last_id = last_event_id(request)
        except BadLastEventId as exc:
            return web.Response(
                status=400, body=encode_json({"error": str(exc)}), content_type="application/json"
            )
        viewer: Viewer = request.get("viewer", EVERYONE)
        visibility = self._visibility()
        sight = sight_of(viewer, visibility)

        def accept(event: Event) -> bool:
            nonlocal visibility, sight
            now = self._visibility()
            if now is not visibility:  # a new revision: the viewer's rights may differ
                visibility, sight = now, sight_of(viewer, now)
            return sees_event(sight, event)

        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        everything = viewer.sees_everything
        if everything:
            sub = self.broker.subscribe(None, last_id=last_id)
            numbers = None
        else:  # what it resumes from is not read: any answer would count hidden events
            sub = self.broker.subscribe(accept)
            if last_id is not None:
                sub.reset = FILTERED_RESET
            numbers = itertools.count(1)
        try:
            await response.prepare(request)
            if request.method == "HEAD":
                return response
            head = f"retry: {RETRY_MS}\n\n".encode()
            if sub.reset is not None:
                reset_id = self.broker.last_id if numbers is None else 0
                head += wire(reset_id, "reset", {"reason": sub.reset})
            await response.write(head)
            await self._stream(response, sub, numbers)
            log.debug("event stream to %s ended: %s", request.remote, sub.ended or "its age")
            response.force_close()  # the connection too: the client reconnects and resumes
        except ConnectionError:
            log.debug("event stream to %s: the client went away", request.remote)
        finally:
            self.broker.unsubscribe(sub)
        return response

    async def _stream(
        self,
        response: web.StreamResponse,
        sub: Subscription,
        numbers: Iterator[int] | None,
    ) -> None:
        """The events ``sub`` takes, until it ends or reaches :attr:`max_age_s`
        (``numbers``: a filtered stream's ids);
        a heartbeat when nothing was written for :attr:`heartbeat_s` (what this viewer is
        sent, not what anyone is)."""
        clock = asyncio.get_running_loop().time
        quiet_until = clock() + self.heartbeat_s
        ends = clock() + self.max_age_s
        while sub.ended is None and clock() < ends:
            left = quiet_until - clock()
            if left <= 0:
                await response.write(b": heartbeat\n\n")
                quiet_until = clock() + self.heartbeat_s
                continue
            if not await sub.wait(min(left, ends - clock())):
                continue
            events = sub.take()
            if events:
                await self._send(response, events, numbers)
                quiet_until = clock() + self.heartbeat_s

    @staticmethod
    async def _send(
        response: web.StreamResponse, events: list[Event], numbers: Iterator[int] | None
    ) -> None:
        chunk: list[bytes] = []
        size = 0
        for event in events:
            data = event.wire if numbers is None else renumbered(event, next(numbers))
            chunk.append(data)
            size += len(data)
            if size >= MAX_BATCH_BYTES:
                await response.write(b"".join(chunk))
                chunk, size = [], 0
        if chunk:
            await response.write(b"".join(chunk))
