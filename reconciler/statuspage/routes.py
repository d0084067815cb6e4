"""The page's routes on the service's aiohttp application: ``add_routes(app, source)``.

``GET``/``HEAD``: ``/`` (the page), ``/static/{file}`` (its assets, with an ETag and
``Cache-Control: no-cache``, so a browser revalidates and gets ``304``), and the JSON
documents ``/api/v1/maps``, ``/api/v1/maps/{map}``,
``/api/v1/maps/{map}/components/{component}`` and ``/api/v1/requests``. An unknown map or
component, or one the viewer may not ``view``, is a ``404`` JSON answer (the same for
both: the page does not tell what exists to whom may not see it).

The viewer is ``request["viewer"]`` (set by the server's identity middleware; absent:
everyone sees everything).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

from reconciler.loop.view import encode_json
from reconciler.statuspage.access import Access
from reconciler.statuspage.asking import Asking
from reconciler.statuspage.component import component_doc, find_component
from reconciler.statuspage.documents import find_map, map_doc, overview
from reconciler.statuspage.requestsdoc import requests_doc
from reconciler.statuspage.source import PageSource

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
    return web.Response(
        body=encode_json(document),
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
        return Access(user, self.source.policies(), filtered=trusted or user is not None)

    def _asking(self, access: Access) -> Asking:
        repo = self.source.repo()
        settings = repo.effective_settings if repo else None
        return Asking(
            branch=settings.branch if settings else "main",
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
        return json_response(overview(self.source.snapshot(), self.source.repo(), access))

    async def map(self, request: web.Request) -> web.Response:
        access = self._access(request)
        view = find_map(self.source.snapshot(), request.match_info["map"], access)
        if view is None:
            return not_found("map")
        return json_response(map_doc(view, self.source.repo(), access))

    async def component(self, request: web.Request) -> web.Response:
        access = self._access(request)
        view = find_map(self.source.snapshot(), request.match_info["map"], access)
        found = find_component(view, request.match_info["component"], access) if view else None
        if view is None or found is None:
            return not_found("component")
        repo = self.source.repo()
        model = repo.map(view.name) if repo else None
        doc = component_doc(
            view,
            found,
            model.component(found.id) if model else None,
            access=access,
            asking=self._asking(access),
            history=self.source.history(),
        )
        return json_response(doc)

    async def requests(self, request: web.Request) -> web.Response:
        access = self._access(request)
        doc = requests_doc(
            self.source.recent_requests(REQUESTS_READ),
            self.source.history(),
            access=access,
            asking=self._asking(access),
        )
        return json_response(doc)


REQUESTS_READ = 50


def add_routes(app: web.Application, source: PageSource) -> None:
    """Mount the page and its JSON documents on ``app`` (GET, and HEAD for each)."""
    page = PageRoutes(source)
    app.router.add_get("/", page.index)
    app.router.add_get("/static/{name}", page.static)
    app.router.add_get("/api/v1/maps", page.maps)
    app.router.add_get("/api/v1/maps/{map}", page.map)
    app.router.add_get("/api/v1/maps/{map}/components/{component}", page.component)
    app.router.add_get("/api/v1/requests", page.requests)
