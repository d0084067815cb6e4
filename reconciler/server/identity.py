"""Who is asking: a trusted identity header, only from trusted proxies.

Behind an authenticating proxy (oauth2-proxy and the like), ``opsmap run
--trusted-user-header X-Forwarded-Email --trusted-proxy 127.0.0.1`` takes the person from
that header, but only on connections from the proxies' addresses: anyone else could send
the header too, so from any other address it is ignored (and said once, at debug level).
The person then sees only the maps and components their policies let them ``view``
(:class:`~reconciler.policy.visibility.Visibility`), in ``/api/v1/status`` and the event
stream. Without the options, everyone who can reach the endpoint sees everything.

With the options, a request that brings no trusted identity sees nothing: the operator
asked for views by person, and an address that goes around the proxy is no person.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from reconciler.loop.view import Snapshot
from reconciler.policy.visibility import Visibility

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
        user = values[0].strip()
        if len(values) != 1 or not user or len(user) > MAX_USER_LENGTH or not user.isprintable():
            return Viewer(None, True)
        return Viewer(user, True)

    def middleware(self) -> Callable[..., object]:
        """Sets ``request["viewer"]`` on every request."""

        @web.middleware
        async def viewer_middleware(
            request: web.Request, handler: Callable[[web.Request], object]
        ) -> web.StreamResponse:
            viewer = self.viewer(request.remote, request.headers.items())
            # "viewer", a plain key, is what the status page's routes read (they cannot
            # import the server); aiohttp advises typed keys, once: not for this one.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", web.NotAppKeyWarning)
                request["viewer"] = viewer
            response = await handler(request)  # type: ignore[misc]
            assert isinstance(response, web.StreamResponse)
            return response

        return viewer_middleware


VisibleTo = Callable[[str | None, str | None], bool]
"""Whether a map (and component, when given) may be seen by one viewer."""


def visible_to(viewer: Viewer, visibility: Visibility) -> VisibleTo:
    """The viewer's filter of maps and components."""
    if viewer.sees_everything:
        return lambda map_name, component: True
    user = viewer.user
    seen = visibility.visible(user) if user is not None else frozenset()
    maps = {m for m, _ in seen}

    def may(map_name: str | None, component: str | None) -> bool:
        if map_name is None:
            return True  # not about a map (a revision)
        if component is None or component == "*":
            return map_name in maps
        return (map_name, component) in seen

    return may


def visible_snapshot(snapshot: Snapshot, may: VisibleTo) -> Snapshot:
    """``snapshot`` with only the components (and maps with any) ``may`` lets through."""
    maps = []
    for m in snapshot.maps:
        components = tuple(c for c in m.components if may(m.name, c.id))
        if components:
            maps.append(dataclasses.replace(m, components=components))
    return dataclasses.replace(snapshot, maps=tuple(maps))
