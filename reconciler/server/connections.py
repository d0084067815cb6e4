"""Connections to the HTTP endpoint: how many, and how long a slow client may take.

aiohttp serves each connection with a :class:`aiohttp.web.RequestHandler` (a protocol on
the loop, no thread). :class:`GuardedHandler` adds what it lacks:

- a bound on open connections (:class:`Limits.max_connections`): one past it gets a
  ``503`` written straight to its socket and is closed, before any parsing;
- a bound on a client that does not read what it is sent: when the socket's write buffer
  stays full (asyncio paused writing) for :attr:`Limits.send_timeout_s`, the connection
  is aborted, which also ends an event stream stuck on it;
- ``Server: opsmap`` on the errors aiohttp writes itself (a malformed request).

A client that does not finish sending its request is closed by aiohttp's keep-alive
timer (:attr:`Limits.request_timeout_s`: it fires while no complete request has arrived),
and a body is read under a timeout by the handler that reads it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_request import BaseRequest

log = logging.getLogger(__name__)

SERVER_NAME = "opsmap"
REFUSED_LINGER_S = 1.0
"""How long a refused connection is kept to read (and drop) what the client sends."""


@dataclass(frozen=True)
class Limits:
    max_connections: int = 256
    """Open connections at once (event streams included)."""
    request_timeout_s: float = 15.0
    """A request must arrive whole within this, from the connection or the last answer."""
    send_timeout_s: float = 15.0
    """A client may leave what it is sent unread this long before it is dropped."""
    body_timeout_s: float = 10.0
    """A request body (the webhook's) must be read within this."""


_BUSY_BODY = b'{"status":"unavailable","reason":"too many connections"}\n'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nServer: " + SERVER_NAME.encode() + b"\r\n"
    b"Content-Type: application/json\r\nConnection: close\r\nRetry-After: 1\r\n"
    b"Content-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY
)


class ConnectionCount:
    """The connections open now, shared by the handlers of one endpoint."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.open = 0
        self.refused = 0
        self.dropped = 0


class GuardedHandler(web.RequestHandler):
    """aiohttp's protocol for one connection, within :class:`Limits`."""

    def __init__(self, manager: web.Server, *, count: ConnectionCount, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._count = count
        self._admitted = False
        self._refused = False
        self._stuck: asyncio.TimerHandle | None = None
        self._guarded_transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        count = self._count
        if count.open >= count.limits.max_connections:
            self._refused = True
            count.refused += 1
            log.debug("connection refused: %d open", count.open)
            # answered, then closed once the client has sent what it sends (a close with
            # its request unread would reset the connection before it reads the answer)
            transport.write(_BUSY)
            if transport.can_write_eof():
                transport.write_eof()
            self._stuck = asyncio.get_running_loop().call_later(REFUSED_LINGER_S, transport.close)
            return
        count.open += 1
        self._admitted = True
        self._guarded_transport = transport
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refused:
            self._cancel_stuck()
            return
        if self._admitted:
            self._admitted = False
            self._count.open -= 1
        self._cancel_stuck()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    def eof_received(self) -> None:
        if not self._refused:
            super().eof_received()
        # refused: returning None closes the transport now that the client is done

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stuck is None:
            loop = asyncio.get_running_loop()
            self._stuck = loop.call_later(self._count.limits.send_timeout_s, self._drop)

    def resume_writing(self) -> None:
        self._cancel_stuck()
        super().resume_writing()

    def _cancel_stuck(self) -> None:
        if self._stuck is not None:
            self._stuck.cancel()
            self._stuck = None

    def _drop(self) -> None:
        """The client has read nothing for the send timeout: drop it, and what it has not
        read (the buffer is freed at once, nothing waits for it)."""
        self._stuck = None
        self._count.dropped += 1
        log.debug("connection dropped: the client did not read for %gs",
                  self._count.limits.send_timeout_s)  # fmt: skip
        if self._guarded_transport is not None:
            self._guarded_transport.abort()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        response = super().handle_error(request, status, exc, message)
        response.headers["Server"] = SERVER_NAME
        return response


class GuardedSite(web.BaseSite):
    """A TCP site whose connections are :class:`GuardedHandler`: ``aiohttp.web.TCPSite``
    with the limits, on a socket bound here (so that the port is known before start)."""

    def __init__(
        self,
        runner: web.AppRunner,
        sock: Any,
        *,
        count: ConnectionCount,
        handler_args: dict[str, Any],
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._sock = sock
        self._count = count
        self._handler_args = handler_args

    @property
    def name(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def _protocol(self) -> GuardedHandler:
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        return GuardedHandler(server, count=self._count, loop=loop, **self._handler_args)

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, sock=self._sock, backlog=self._backlog
        )
