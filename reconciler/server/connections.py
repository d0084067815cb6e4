"""Connections to the HTTP endpoint: how many, and how long a slow client may take.

aiohttp serves each connection with a :class:`aiohttp.web.RequestHandler` (a protocol on
the loop, no thread). :class:`GuardedHandler` adds what it lacks:

- a bound on open connections (:attr:`Limits.max_connections`), with
  :attr:`Limits.probe_slots` more kept for the probes: a connection admitted past the
  bound is *probe-only* (:mod:`.clients` answers anything but a probe there ``503`` and
  closes it after its one answer). At the ceiling, a new connection takes the place of
  the one that has waited longest for a request (idle keep-alive, or a request never
  finished): a flood of connections that send nothing cannot keep a probe out, since a
  probe sends its request at once. Only when every connection is busy with a request or
  a stream is one refused, with a ``503`` written straight to its socket;
- a write deadline (:attr:`Limits.send_timeout_s`), two ways: when the socket's write
  buffer stays full (asyncio paused writing) that long, and when what was sent stays
  unacknowledged by the client's TCP that long, not a byte of it acknowledged meanwhile
  (the kernel's own counts, :func:`unacknowledged`): a client that stops reading shuts
  its window, so even a stream that sends only heartbeats is dropped once the client's
  buffer is full. Aborting the connection also ends an event stream stuck on it;
- ``Server: opsmap`` on the errors aiohttp writes itself (a malformed request).

A client that does not finish sending its request is closed by aiohttp's keep-alive
timer (:attr:`Limits.request_timeout_s`: it fires while no complete request has arrived),
and a body is read under a timeout by the handler that reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import logging
import socket
import struct
import sys
import termios
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_request import BaseRequest

from reconciler.inert import for_log

log = logging.getLogger(__name__)

SERVER_NAME = "opsmap"
REFUSED_LINGER_S = 1.0
"""How long a refused connection is kept to read (and drop) what the client sends."""


@dataclass(frozen=True)
class Limits:
    """The bounds of one listener and of each client on it (see the README's table)."""

    max_connections: int = 256
    """Open connections at once (event streams included), probes apart."""
    probe_slots: int = 16
    """Connections past ``max_connections`` kept for ``/healthz`` and ``/readyz``: one
    answer each, then closed."""
    request_timeout_s: float = 15.0
    """A request must arrive whole within this, from the connection or the last answer."""
    send_timeout_s: float = 15.0
    """A client may leave what it is sent unread (unacknowledged, or filling the write
    buffer) this long before it is dropped."""
    body_timeout_s: float = 10.0
    """A request body (the webhook's) must be read within this."""
    streams_per_client: int = 8
    """Event streams open at once per client (an address, or a person behind the proxy)."""
    requests_per_client: int = 16
    """Requests in progress at once per client, streams and probes apart."""
    stream_max_age_s: float = 600.0
    """An event stream is ended after this (the browser reconnects and resumes with
    ``Last-Event-ID``): the bound on a client that never reads and whose buffers never
    fill with what a quiet stream sends."""


_BUSY_BODY = b'{"status":"unavailable","reason":"too many connections"}\n'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nServer: " + SERVER_NAME.encode() + b"\r\n"
    b"Content-Type: application/json\r\nConnection: close\r\nRetry-After: 1\r\n"
    b"Content-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY
)

_STATUSES = frozenset(HTTPStatus)
_RESET = struct.pack("ii", 1, 0)
"""``SO_LINGER`` on, for 0 s: a close resets the connection, discarding what is queued."""
_TCP_INFO = getattr(socket, "TCP_INFO", None)
_TCP_INFO_LENGTH = 128
_BYTES_ACKED = slice(120, 128)
"""``tcpi_bytes_acked`` in Linux's ``struct tcp_info`` (since 4.1; the struct only grows)."""


def unacknowledged(transport: asyncio.Transport) -> tuple[int, int] | None:
    """What the client has not acknowledged (the loop's buffer and the kernel's send
    queue, in bytes) and how many bytes it acknowledged so far, from the kernel (Linux's
    ``SIOCOUTQ`` and ``TCP_INFO``); None where the platform does not say."""
    sock = transport.get_extra_info("socket")
    if sock is None or _TCP_INFO is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_LENGTH)
        queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, bytes(4))  # = SIOCOUTQ
    except OSError:
        return None
    if len(info) < _TCP_INFO_LENGTH:
        return None
    acked = int.from_bytes(info[_BYTES_ACKED], sys.byteorder)
    in_kernel = int.from_bytes(queued, sys.byteorder, signed=True)
    return transport.get_write_buffer_size() + max(in_kernel, 0), acked


def same_port(one: tuple[Any, ...], other: tuple[Any, ...]) -> bool:
    """Whether two bound addresses are the same port on one address, or on a wildcard
    (both bind with ``SO_REUSEADDR``, and only the second to listen would fail)."""
    if one[1] != other[1]:
        return False
    hosts = (ipaddress.ip_address(one[0]), ipaddress.ip_address(other[0]))
    return hosts[0] == hosts[1] or any(h.is_unspecified for h in hosts)


class ConnectionCount:
    """The connections open on one listener, oldest first, shared by its handlers."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.handlers: dict[GuardedHandler, None] = {}
        self.refused = 0
        self.dropped = 0
        """Connections dropped by the write deadline."""
        self.evicted = 0
        """Idle connections closed to make room for a new one."""

    @property
    def open(self) -> int:
        return len(self.handlers)

    @property
    def ceiling(self) -> int:
        return self.limits.max_connections + self.limits.probe_slots

    def make_room(self) -> bool:
        """Close the connection that has waited longest for a request; False if every
        connection is busy with one (or with a stream)."""
        for handler in self.handlers:
            if handler.idle:
                self.evicted += 1
                handler.close_now("its place is taken by a new connection")
                return True
        return False


class GuardedHandler(web.RequestHandler):
    """aiohttp's protocol for one connection, within :class:`Limits`."""

    def __init__(self, manager: web.Server, *, count: ConnectionCount, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._count = count
        self._refused = False
        self.probe_only = False
        """Admitted past :attr:`Limits.max_connections`: for one probe's answer."""
        self._fresh = True
        self._stuck: asyncio.TimerHandle | None = None
        self._watch: asyncio.TimerHandle | None = None
        self._last_sample: tuple[int, int] | None = None
        self._guarded_transport: asyncio.Transport | None = None

    @property
    def idle(self) -> bool:
        """Waiting for a request: nothing received yet, or, as aiohttp's own keep-alive
        timer reads it, no whole request queued or in progress (only part of one)."""
        if self._fresh:
            return True
        waiter = self._waiter
        return waiter is not None and not waiter.done()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        count = self._count
        if count.open >= count.ceiling and not count.make_room():
            self._refuse(transport)
            return
        self.probe_only = count.open >= count.limits.max_connections
        count.handlers[self] = None
        self._guarded_transport = transport
        super().connection_made(transport)
        self._watch_progress()

    def _refuse(self, transport: asyncio.Transport) -> None:
        self._refused = True
        self._count.refused += 1
        log.debug("connection refused: %d open, all busy", self._count.open)
        # answered, then closed once the client has sent what it sends (a close with
        # its request unread would reset the connection before it reads the answer)
        transport.write(_BUSY)
        if transport.can_write_eof():
            transport.write_eof()
        self._stuck = asyncio.get_running_loop().call_later(REFUSED_LINGER_S, transport.close)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_timers()
        if self._refused:
            return
        self._count.handlers.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            self._fresh = False
            super().data_received(data)

    def eof_received(self) -> None:
        if not self._refused:
            super().eof_received()
        # refused: returning None closes the transport now that the client is done

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stuck is None:
            loop = asyncio.get_running_loop()
            self._stuck = loop.call_later(self._count.limits.send_timeout_s, self._unread)

    def resume_writing(self) -> None:
        if self._stuck is not None:
            self._stuck.cancel()
            self._stuck = None
        super().resume_writing()

    def _cancel_timers(self) -> None:
        for timer in (self._stuck, self._watch):
            if timer is not None:
                timer.cancel()
        self._stuck = self._watch = None

    def _watch_progress(self) -> None:
        loop = asyncio.get_running_loop()
        self._watch = loop.call_later(self._count.limits.send_timeout_s, self._progress)

    def _progress(self) -> None:
        """Every send timeout: drop the client if what it was sent a send timeout ago is
        still unacknowledged and it acknowledged nothing since."""
        self._watch = None
        transport = self._guarded_transport
        if transport is None or transport.is_closing():
            return
        sample = unacknowledged(transport)
        if sample is None:
            return  # the platform does not say: the full write buffer's timer alone
        last, self._last_sample = self._last_sample, sample
        if last is not None and last[0] and sample[0] and sample[1] == last[1]:
            self._drop("acknowledged nothing it was sent")
            return
        self._watch_progress()

    def _unread(self) -> None:
        self._stuck = None
        self._drop("left its write buffer full")

    def _drop(self, why: str) -> None:
        """The client has read nothing for the send timeout: drop it, and what it has not
        read (the buffer is freed at once, nothing waits for it)."""
        self._count.dropped += 1
        self.close_now(f"{why} for {self._count.limits.send_timeout_s:g}s")

    def close_now(self, why: str) -> None:
        """Reset the connection: what the client has not read is dropped, from the loop's
        buffer and the kernel's (a plain close would leave the kernel sending it, for
        minutes, to a window that stays shut)."""
        log.debug("connection dropped: the client %s", why)
        self._count.handlers.pop(self, None)
        self._cancel_timers()
        transport = self._guarded_transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        transport.abort()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to a request it cannot serve. A malformed request (a 4xx) is
        the client's mistake: one debug line, not the traceback at error level that aiohttp
        logs (any client could fill the log with them)."""
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            response = super().handle_error(request, status, exc, message)
        else:
            log.debug("malformed request from %s: %s", request.remote, for_log(exc or message))
            if request.writer is not None and request.writer.output_size > 0:
                raise ConnectionError("an answer was sent already: cannot send the error")
            reason = HTTPStatus(status).phrase if status in _STATUSES else "Bad Request"
            response = web.Response(
                status=status,
                body=b'{"error":"' + reason.lower().encode() + b'"}\n',
                content_type="application/json",
            )
            response.force_close()
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
