"""The page's routes over real HTTP (aiohttp's test server on a loopback port)."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from page_support import StaticSource, snapshot, write_repo

from reconciler.statuspage import add_routes

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Viewer:
    """As the server's identity middleware sets it (``request["viewer"]``)."""

    user: str | None
    trusted: bool


def app_for(tmp_path: Path) -> web.Application:
    @web.middleware
    async def viewer(request: web.Request, handler: Handler) -> web.StreamResponse:
        user = request.headers.get("X-Test-User")
        with warnings.catch_warnings():  # the contract's key is the string "viewer"
            warnings.simplefilter("ignore", web.NotAppKeyWarning)
            request["viewer"] = Viewer(user, user is not None)
        return await handler(request)

    app = web.Application(middlewares=[viewer])
    add_routes(app, StaticSource(write_repo(tmp_path / "repo"), snapshot()))
    return app


def run(tmp_path: Path, body: Callable[[TestClient[Any, Any]], Awaitable[None]]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(app_for(tmp_path))) as client:
            await body(client)

    asyncio.run(main())


def test_page_and_assets(tmp_path: Path) -> None:
    async def body(client: TestClient[Any, Any]) -> None:
        page = await client.get("/")
        assert page.status == 200
        assert page.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        assert '<script src="/static/app.js"' in await page.text()
        head = await client.head("/")
        assert head.status == 200
        assert await head.read() == b""
        for name, kind in [("app.js", "text/javascript"), ("app.css", "text/css")]:
            asset = await client.get(f"/static/{name}")
            assert asset.status == 200
            assert asset.headers["Content-Type"].startswith(kind)
            assert asset.headers["Cache-Control"] == "no-cache"
            again = await client.get(
                f"/static/{name}", headers={"If-None-Match": asset.headers["ETag"]}
            )
            assert again.status == 304
        for missing in ("/static/nope.js", "/static/..%2Fsource.py", "/static/index.html"):
            gone = await client.get(missing)
            assert gone.status == 404, missing

    run(tmp_path, body)


def test_documents_and_not_found(tmp_path: Path) -> None:
    async def body(client: TestClient[Any, Any]) -> None:
        maps = await client.get("/api/v1/maps")
        assert maps.status == 200
        assert maps.headers["Content-Type"].startswith("application/json")
        assert [m["name"] for m in (await maps.json())["maps"]] == ["shop", "secret"]
        shop = await (await client.get("/api/v1/maps/shop")).json()
        assert {n["id"] for n in shop["graph"]["nodes"]} == {"db", "api", "zookeeper"}
        api = await (await client.get("/api/v1/maps/shop/components/api")).json()
        assert [a["name"] for a in api["actions"]] == ["restart", "flush"]
        assert api["actions"][0]["may"] is None  # no viewer known
        for path in ("/api/v1/maps/nope", "/api/v1/maps/shop/components/nope"):
            missing = await client.get(path)
            assert missing.status == 404
            assert "error" in await missing.json()
        requests = await client.get("/api/v1/requests")
        assert (await requests.json())["requests"] == []

    run(tmp_path, body)


def test_viewer_filters_every_document(tmp_path: Path) -> None:
    olga = {"X-Test-User": "olga@example.com"}

    async def body(client: TestClient[Any, Any]) -> None:
        maps = await (await client.get("/api/v1/maps", headers=olga)).json()
        assert [m["name"] for m in maps["maps"]] == ["shop"]
        assert maps["viewer"] == {"user": "olga@example.com", "filtered": True}
        hidden = await client.get("/api/v1/maps/secret", headers=olga)
        assert hidden.status == 404
        hidden = await client.get("/api/v1/maps/secret/components/vault", headers=olga)
        assert hidden.status == 404
        api = await (await client.get("/api/v1/maps/shop/components/api", headers=olga)).json()
        assert api["actions"][0]["may"] is True

    run(tmp_path, body)
