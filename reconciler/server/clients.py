"""Each client's share of the endpoint: event streams and requests in progress.

A *client* is the person the trusted identity header names (behind the authenticating
proxy every person has the proxy's address, so the address tells nobody apart there), or
else its address: an IPv4 address, or an IPv6 address's ``/64`` (one host holds a whole
``/64``). A client past :attr:`~.connections.Limits.streams_per_client` event streams, or
:attr:`~.connections.Limits.requests_per_client` requests in progress, is answered
``429`` with ``Retry-After`` and its connection closed; other clients are not affected.

The probes (``/healthz``, ``/readyz``) are nobody's share: never counted, never refused
for a client's sake. On a connection admitted into the listener's reserved slots
(:attr:`~.connections.GuardedHandler.probe_only`), only the paths in ``reserved`` are
answered, once, and anything else is ``503 too many connections``.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from aiohttp import web

from reconciler.loop.view import encode_json
from reconciler.server.connections import Limits

log = logging.getLogger(__name__)

PROBES = frozenset({"/healthz", "/readyz"})
IPV6_CLIENT_PREFIX = 64
STREAM_RETRY_AFTER_S = 10
REQUEST_RETRY_AFTER_S = 1

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CLIENT_LIMITS: web.AppKey[ClientLimits] = web.AppKey("client_limits")


def client_of(request: web.Request) -> str:
    """The client a request counts against: ``user NAME`` or ``address ADDR``."""
    user = getattr(request.get("viewer"), "user", None)
    if isinstance(user, str):
        return f"user {user}"
    return f"address {address_key(request.remote)}"


def address_key(peer: str | None) -> str:
    """An IPv4 address, or an IPv6 address's ``/64`` (an IPv4-mapped one as IPv4)."""
    if not peer:
        return "-"
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return peer  # not IP (a Unix socket's path): as it is
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(address)


def refusal(status: HTTPStatus, reason: str, retry_after_s: int) -> web.Response:
    response = web.Response(
        status=status,
        body=encode_json({"status": "unavailable", "reason": reason}),
        content_type="application/json",
        headers={"Retry-After": str(retry_after_s)},
    )
    response.force_close()  # the connection's place goes to someone else
    return response


class ClientLimits:
    """Counts each client's streams and requests in progress, for one application
    (``app[CLIENT_LIMITS]``)."""

    def __init__(
        self,
        limits: Limits,
        *,
        streams: frozenset[str] = frozenset(),
        reserved: frozenset[str] = PROBES,
    ) -> None:
        """``streams``: the paths whose answers are event streams; ``reserved``: the
        paths answered on a reserved (probe-only) connection (the probes, and on the
        operator listener ``/metrics``)."""
        self.limits = limits
        self.streams = streams
        self.reserved = reserved | PROBES
        self.open_streams: dict[str, int] = {}
        self.in_progress: dict[str, int] = {}
        self.refused = {"reserved": 0, "client_streams": 0, "client_requests": 0}
        """Requests refused, by why: not a probe on a reserved slot, or over a share."""

    def middleware(self) -> Callable[..., object]:
        """Counts and bounds each request (after the identity middleware: it reads
        ``request["viewer"]``)."""

        @web.middleware
        async def client_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
            path = request.path
            probe_only = getattr(request.protocol, "probe_only", False) is True
            if probe_only and path not in self.reserved:
                self.refused["reserved"] += 1
                return refusal(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections", 1)
            if path in PROBES:
                response = await handler(request)
            else:
                response = await self._counted(request, handler)
            if probe_only:
                response.force_close()  # one answer: the reserved slot is free again
            return response

        return client_limits

    async def _counted(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in self.streams:
            table, most, what = self.open_streams, self.limits.streams_per_client, "event streams"
            retry_after, reason = STREAM_RETRY_AFTER_S, "client_streams"
        else:
            table, most, what = self.in_progress, self.limits.requests_per_client, "requests"
            retry_after, reason = REQUEST_RETRY_AFTER_S, "client_requests"
        client = client_of(request)
        held = table.get(client, 0)
        if held >= most:
            self.refused[reason] += 1
            log.debug("%s refused to a client over its limit (%d)", what, most)
            return refusal(
                HTTPStatus.TOO_MANY_REQUESTS,
                f"too many {what} from this client (at most {most} at once)",
                retry_after,
            )
        table[client] = held + 1
        try:
            return await handler(request)
        finally:
            left = table[client] - 1
            if left:
                table[client] = left
            else:
                del table[client]
