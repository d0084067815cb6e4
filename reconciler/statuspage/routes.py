"""The page's routes on the service's aiohttp application: ``add_routes(app, source)``.

``GET``/``HEAD``: ``/`` (the page), ``/static/{file}`` (its assets, with an ETag and
``Cache-Control: no-cache``, so a browser revalidates and gets ``304``), and the JSON
documents ``/api/v1/maps``, ``/api/v1/maps/{map}``,
``/api/v1/maps/{map}/components/{component}`` and ``/api/v1/requests``. An unknown map or
component, or one the viewer may not ``view``, is a ``404`` JSON answer (the same bytes
for both: the page does not tell what exists to whom may not see it).

The viewer is ``request["viewer"]`` (set by the server's identity middleware, which also
refuses a request with no trusted identity while identities are enforced; absent: everyone
sees everything). Every document is built from what that viewer sees
(:func:`~reconciler.loop.viewers.seen_by`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

from reconciler.loop.view import encode_json
from reconciler.statuspage.access import Access
from reconciler.statuspage.asking import Asking
from reconciler.statuspage.component import component_doc, find_component
from reconciler.statuspage.documents import find_map, map_doc, overview
from reconciler.statuspage.pagesource import PageSource
from reconciler.statuspage.requestsdoc import requests_doc

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
JSON_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """The static files shipped in the package (read once)."""
    folder = resources.files("reconciler.statuspage") / "static"
    assets = {}
    for name, content_type in ASSETS.items():
        body = (folder / name).read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        assets[name] = Asset(body, content_type, etag)
    return assets


def json_response(document: object, *, status: int = 200) -> web.Response:
    return json_bytes(encode_json(document), status=status)


def json_bytes(body: bytes, *, status: int = 200) -> web.Response:
    return web.Response(
        body=body,
        status=status,
        content_type=JSON_TYPE,
        headers={"Cache-Control": "no-store", **SECURITY_HEADERS},
    )


def not_found(what: str) -> web.Response:
    return json_response({"error": f"{what} not found"}, status=404)


class PageRoutes:
    def __init__(self, source: PageSource) -> None:
        self.source = source
        self.assets = load_assets()

    def _access(self, request: web.Request) -> Access:
        viewer = request.get("viewer")
        user = getattr(viewer, "user", None)
        user = user if isinstance(user, str) else None
        trusted = getattr(viewer, "trusted", user is not None) is True
        return Access(user, self.source.visibility(), filtered=trusted or user is not None)

    def _asking(self, access: Access) -> Asking:
        repo = self.source.repo()
        settings = repo.effective_settings if repo else None
        return Asking(
            branch=self.source.branch(),
            forge=settings.forge if settings else None,
            user=access.user,
            day=dt.datetime.now(dt.UTC).date(),
        )

    def _asset(self, request: web.Request, name: str) -> web.Response:
        asset = self.assets[name]
        headers = {"ETag": asset.etag, "Cache-Control": "no-cache", **SECURITY_HEADERS}
        if asset.etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        return web.Response(
            body=asset.body,
            content_type=None,
            headers=headers | {"Content-Type": asset.content_type},
        )

    async def index(self, request: web.Request) -> web.Response:
        return self._asset(request, "index.html")

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.assets or name == "index.html":
            return not_found("file")
        return self._asset(request, name)

    async def maps(self, request: web.Request) -> web.Response:
        access = self._access(request)
        snapshot, repo = self.source.snapshot(), self.source.repo()
        return await off_loop(lambda: overview(snapshot, repo, access))

    async def map(self, request: web.Request) -> web.Response:
        access = self._access(request)
        view = find_map(self.source.snapshot(), request.match_info["map"], access)
        if view is None:
            return not_found("map")
        repo = self.source.repo()
        return await off_loop(lambda: map_doc(view, repo, access))

    async def component(self, request: web.Request) -> web.Response:
        access = self._access(request)
        view = find_map(self.source.snapshot(), request.match_info["map"], access)
        found = find_component(view, request.match_info["component"], access) if view else None
        if view is None or found is None:
            return not_found("component")
        repo = self.source.repo()
        model = repo.map(view.name) if repo else None
        component = model.component(found.id) if model else None
        asking, history = self._asking(access), self.source.history()
        return await off_loop(
            lambda: component_doc(
                view, found, component, access=access, asking=asking, history=history
            )
        )

    async def requests(self, request: web.Request) -> web.Response:
        access = self._access(request)
        entries, target = self.source.recent_requests(REQUESTS_READ), self.source.request_target
        asking = self._asking(access)
        return await off_loop(lambda: requests_doc(entries, target, access=access, asking=asking))


REQUESTS_READ = 50


async def off_loop(build: Callable[[], object]) -> web.Response:
    """The document built and encoded in a worker thread: its parts (the snapshot, the
    repo, the policies, the history) are immutable, and a large map's document takes tens
    of milliseconds that the loop keeps for the checks and the event streams."""
    body = await asyncio.to_thread(lambda: encode_json(build()))
    return json_bytes(body)


def add_routes(app: web.Application, source: PageSource) -> None:
    """Mount the page and its JSON documents on ``app`` (GET, and HEAD for each)."""
    page = PageRoutes(source)
    app.router.add_get("/", page.index)
    app.router.add_get("/static/{name}", page.static)
    app.router.add_get("/api/v1/maps", page.maps)
    app.router.add_get("/api/v1/maps/{map}", page.map)
    app.router.add_get("/api/v1/maps/{map}/components/{component}", page.component)
    app.router.add_get("/api/v1/requests", page.requests)
