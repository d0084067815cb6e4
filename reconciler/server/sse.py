"""``GET /api/v1/events``: the broker's events as Server-Sent Events, for one viewer.

A stream is a coroutine on the loop and a bounded queue (:mod:`.broker`): no thread.
It sends the events its viewer may see (:func:`~reconciler.server.identity.sees_event`),
a ``: heartbeat`` comment when nothing was sent for a while (so proxies and browsers
keep the connection, and a dead client is found), and ends when its client falls too far
behind, stops reading (:mod:`.connections` aborts it), or the server stops. A client that
reconnects with ``Last-Event-ID`` gets what it missed, or a ``reset`` event (refetch).

A viewer who sees only part of the events (identities enforced) learns nothing of the
others from the stream's form either: its ids are the events' own sealed
(:class:`SealedIds`: the ids grow by one per event of anyone's, so their gaps would count
the hidden ones), its heartbeat comes after a quiet interval of what *it* is sent, and its
``reset`` gives one reason whatever the events since its id were.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable

from aiohttp import web

from reconciler.policy.visibility import Visibility
from reconciler.server.broker import Event, EventBroker, Subscription, wire
from reconciler.server.identity import EVERYONE, Viewer, sees_event, sight_of

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0
RETRY_MS = 2000
"""How long a browser waits before it reconnects (the stream's ``retry:``)."""
MAX_BATCH_BYTES = 256 * 1024
"""Queued events written to the socket at once, at most about this much."""
FILTERED_RESET = "fetch the state again"
"""The one ``reset`` reason a filtered viewer is given (see the module docstring)."""


class SealedIds:
    """Event ids as a filtered viewer is sent them: a keyed permutation of 62-bit integers
    (a four-round Feistel network over two 31-bit halves, HMAC-SHA256 as its round
    function, a key drawn per process), so that no two tell how many events came between
    them; :meth:`open` gives back the id (another number gives a random one, which the
    broker does not keep: a reset). 62 bits hold the broker's ids (microseconds since
    1970) and write as at most 19 digits, which :func:`last_event_id` reads back."""

    HALF = 31
    MASK = (1 << HALF) - 1
    ROUNDS = 4

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)

    def _f(self, round_: int, half: int) -> int:
        digest = hmac.digest(self._key, bytes([round_]) + half.to_bytes(4, "big"), hashlib.sha256)
        return int.from_bytes(digest[:4], "big") & self.MASK

    def seal(self, event_id: int) -> int:
        left, right = (event_id >> self.HALF) & self.MASK, event_id & self.MASK
        for i in range(self.ROUNDS):
            left, right = right, left ^ self._f(i, right)
        return (left << self.HALF) | right

    def open(self, sealed: int) -> int:
        left, right = (sealed >> self.HALF) & self.MASK, sealed & self.MASK
        for i in reversed(range(self.ROUNDS)):
            left, right = right ^ self._f(i, left), left
        return (left << self.HALF) | right

    def wire(self, event: Event) -> bytes:
        """``event`` as the stream sends it, with its id sealed."""
        head = f"id: {event.id}\n".encode()
        return f"id: {self.seal(event.id)}\n".encode() + event.wire[len(head) :]


def last_event_id(request: web.Request) -> int | None:
    """The client's ``Last-Event-ID`` (header, or ``?last_event_id=``); None if absent or bad."""
    value = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() and len(value) < 20 else None


class EventStreams:
    """The handler of ``GET /api/v1/events``."""

    def __init__(
        self,
        broker: EventBroker,
        visibility: Callable[[], Visibility],
        *,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.broker = broker
        self._visibility = visibility
        self.heartbeat_s = heartbeat_s
        self.ids = SealedIds()

    async def handle(self, request: web.Request) -> web.StreamResponse:
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
        asked = last_event_id(request)
        if asked is not None and not everything:
            asked = self.ids.open(asked)
        sub = self.broker.subscribe(None if everything else accept, last_id=asked)
        sealed = None if everything else self.ids
        try:
            await response.prepare(request)
            if request.method == "HEAD":
                return response
            head = f"retry: {RETRY_MS}\n\n".encode()
            if sub.reset is not None:
                last = self.broker.last_id
                if sealed is None:
                    head += wire(last, "reset", {"reason": sub.reset})
                else:
                    head += wire(sealed.seal(last), "reset", {"reason": FILTERED_RESET})
            await response.write(head)
            await self._stream(response, sub, sealed)
            log.debug("event stream to %s ended: %s", request.remote, sub.ended)
            response.force_close()  # the connection too: the client reconnects and resumes
        except ConnectionError:
            log.debug("event stream to %s: the client went away", request.remote)
        finally:
            self.broker.unsubscribe(sub)
        return response

    async def _stream(
        self, response: web.StreamResponse, sub: Subscription, sealed: SealedIds | None
    ) -> None:
        """The events ``sub`` takes, until it ends; a heartbeat when nothing was written
        for :attr:`heartbeat_s` (what this viewer is sent, not what anyone is)."""
        clock = asyncio.get_running_loop().time
        quiet_until = clock() + self.heartbeat_s
        while sub.ended is None:
            left = quiet_until - clock()
            if left <= 0:
                await response.write(b": heartbeat\n\n")
                quiet_until = clock() + self.heartbeat_s
                continue
            if not await sub.wait(left):
                continue
            events = sub.take()
            if events:
                await self._send(response, events, sealed)
                quiet_until = clock() + self.heartbeat_s

    @staticmethod
    async def _send(
        response: web.StreamResponse, events: list[Event], sealed: SealedIds | None
    ) -> None:
        chunk: list[bytes] = []
        size = 0
        for event in events:
            data = event.wire if sealed is None else sealed.wire(event)
            chunk.append(data)
            size += len(data)
            if size >= MAX_BATCH_BYTES:
                await response.write(b"".join(chunk))
                chunk, size = [], 0
        if chunk:
            await response.write(b"".join(chunk))
