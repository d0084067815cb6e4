"""Who is asking: a trusted identity header, only from trusted proxies.

Behind an authenticating proxy (oauth2-proxy and the like), ``opsmap run
--trusted-user-header X-Forwarded-Email --trusted-proxy 127.0.0.1`` takes the person from
that header, but only on connections from the proxies' addresses: anyone else could send
the header too, so from any other address it is ignored (and said once, at debug level).
The person then sees only the maps and components their policies let them ``view``
(:class:`~reconciler.policy.visibility.Sight`), in every document and stream. Without the
options, everyone who can reach the endpoint sees everything.

With the options, a request that brings no trusted identity sees nothing but the probes
(it is answered 403 everywhere else, :data:`OPEN_TO_ANYONE`): the operator asked for views
by person, and an address that goes around the proxy is no person. The probes, answered to
anyone, then give the reason for a 503 in OpsMap's own words only (:func:`probe_reason`).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from reconciler.loop.view import encode_json
from reconciler.policy.visibility import EVERYTHING, Sight, Visibility
from reconciler.server.broker import Event

log = logging.getLogger(__name__)

MAX_USER_LENGTH = 256
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Viewer:
    """The person a request is from. ``trusted``: identities are enforced (the options are
    set); then ``user`` is who the trusted header names, or None (who sees nothing).
    Untrusted (no options), ``user`` is None and everything is shown."""

    user: str | None
    trusted: bool

    @property
    def sees_everything(self) -> bool:
        return not self.trusted


EVERYONE = Viewer(None, False)


def parse_proxies(value: str) -> tuple[IpNetwork, ...]:
    """``ADDR[,ADDR]`` (addresses or networks) → networks; ValueError names a bad one."""
    networks = []
    for part in value.split(","):
        text = part.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"--trusted-proxy: {text!r} is not an IP address or network") from None
    if not networks:
        raise ValueError("--trusted-proxy: give at least one address")
    return tuple(networks)


def folds_as_ascii(name: str) -> bool:
    """Whether lowercasing ``name`` (as the policies compare people) changes only ASCII
    letters: Unicode's lowercasing makes one of two names (the Kelvin sign ``\u212a``
    lowercases to ``k``, the angstrom sign ``\u212b`` to ``å``), and a person named so at
    the proxy's provider would be another person here. A name with an uppercase letter
    outside ASCII is no identity."""
    return all(c.isascii() or c.lower() == c for c in name)


class Identity:
    """Resolves the :class:`Viewer` of each request; ``header`` None: nobody is told apart."""

    def __init__(self, header: str | None = None, proxies: Iterable[IpNetwork] = ()) -> None:
        self.header = header
        self.proxies = tuple(proxies)
        self._warned: set[str] = set()

    @property
    def enabled(self) -> bool:
        return self.header is not None

    def from_trusted_proxy(self, peer: str | None) -> bool:
        if peer is None:
            return False
        try:
            address = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.proxies)

    def viewer(self, peer: str | None, headers: Iterable[tuple[str, str]]) -> Viewer:
        if self.header is None:
            return EVERYONE
        wanted = self.header.lower()
        values = [v for k, v in headers if k.lower() == wanted]
        if not values:
            return Viewer(None, True)
        if not self.from_trusted_proxy(peer):
            if peer not in self._warned and len(self._warned) < 1024:
                self._warned.add(str(peer))
                log.debug("ignoring %s from %s: not a trusted proxy", self.header, peer)
            return Viewer(None, True)
        user = values[0].strip(" \t")  # Unicode's spaces are part of a name: not printable
        if len(values) != 1 or not user or len(user) > MAX_USER_LENGTH or not user.isprintable():
            return Viewer(None, True)
        if not folds_as_ascii(user):
            return Viewer(None, True)
        return Viewer(user, True)

    def middleware(self) -> Callable[..., object]:
        """Sets ``request["viewer"]`` on every request; while identities are enforced, an
        answer that says nothing of caching is ``no-store`` (it is one person's)."""

        @web.middleware
        async def viewer_middleware(
            request: web.Request, handler: Callable[[web.Request], object]
        ) -> web.StreamResponse:
            viewer = self.viewer(request.remote, request.headers.items())
            if viewer.trusted and viewer.user is None and not open_to_anyone(request.path):
                return refused()
            # "viewer", a plain key, is what the status page's routes read (they cannot
            # import the server); aiohttp advises typed keys, once: not for this one.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", web.NotAppKeyWarning)
                request["viewer"] = viewer
            response = await handler(request)  # type: ignore[misc]
            assert isinstance(response, web.StreamResponse)
            if not viewer.trusted:
                return response
            if request.path in PROBES and isinstance(response, web.Response):
                return plain_probe(response)
            if not response.prepared and "Cache-Control" not in response.headers:
                # one person's document: no cache may keep it for the next one
                response.headers["Cache-Control"] = "no-store"
            return response

        return viewer_middleware


OPEN_TO_ANYONE = frozenset({"/healthz", "/readyz", "/metrics", "/hooks/git", "/"})
"""What a request with no trusted identity reaches while identities are enforced: the
probes, the operator's metrics (firewalled apart: README, "What a viewer sees"), the
webhook (authenticated by its own signature), and the page's shell, which holds no data."""
OPEN_PREFIX = "/static/"
NO_IDENTITY = "no trusted identity came with this request"


def open_to_anyone(path: str) -> bool:
    return path in OPEN_TO_ANYONE or path.startswith(OPEN_PREFIX)


def refused() -> web.Response:
    """403 to a request with no trusted identity: the same for every path it may not reach,
    whether or not something is there."""
    body = {"error": NO_IDENTITY, "viewer": {"user": None, "filtered": True}}
    return web.Response(
        status=403,
        body=encode_json(body),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


PROBES = frozenset({"/healthz", "/readyz"})
_CLAUSE_END = re.compile(r"[:(]")


def probe_reason(reason: str) -> str:
    """A probe's reason as anyone may read it while identities are enforced: its first
    clause, which is OpsMap's own words (``state writes failing``, ``no revision applied
    yet``, ``event loop was blocked for 6.0 s, 0.1 s ago``); what follows a colon or a
    parenthesis is a fetch error or the database's message, which may quote any map's
    files, hosts or requests, and stays the operator's (the log, ``/metrics``)."""
    return _CLAUSE_END.split(reason, maxsplit=1)[0].strip() or "see the reconciler's log"


def plain_probe(response: web.Response) -> web.Response:
    """``response`` (a probe's) with its ``status`` and its reason cut to
    :func:`probe_reason`, and nothing else (a body that is not such JSON: a reason only)."""
    body = response.body
    try:
        doc = json.loads(body) if isinstance(body, bytes) else None
    except ValueError:
        doc = None
    doc = doc if isinstance(doc, dict) else {}
    shown: dict[str, str] = {}
    if isinstance(doc.get("status"), str):
        shown["status"] = doc["status"]
    if "reason" in doc or not shown:
        reason = doc.get("reason")
        shown["reason"] = probe_reason(reason if isinstance(reason, str) else "")
    return web.Response(
        status=response.status, body=encode_json(shown), content_type="application/json"
    )


def sight_of(viewer: Viewer, visibility: Visibility) -> Sight:
    """What ``viewer`` may see at the revision ``visibility`` is of."""
    if viewer.sees_everything:
        return EVERYTHING
    return visibility.sight(viewer.user)


MAP_EVENTS = frozenset({"check", "component"})
"""Events about a component's state: seen with the component."""
TARGET_EVENTS = frozenset({"request", "action"})
"""Events about a request: seen with its target (the whole map for ``*``)."""


def sees_event(sight: Sight, event: Event) -> bool:
    """Whether ``sight`` sees ``event``: a check or a component with the component, a
    request or an action with its target, a revision (no map) by any person."""
    if sight.everything:
        return True
    if event.kind in MAP_EVENTS:
        component = event.component
        return component is not None and sight.component(event.map or "", component)
    if event.kind in TARGET_EVENTS:
        return sight.target(event.map, event.component)
    return sight.person and event.map is None
