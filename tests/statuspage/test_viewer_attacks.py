"""A viewer who may see only some maps, and a client with no identity, try to learn what is
hidden from signals other than the documents' text (which the truth table of
``tests/reconciler_e2e/test_e2e_viewer_truth.py`` holds): the event stream's ids, its
heartbeats, its resets and an open stream across a change of rights, the probes' reasons,
the identity header's case folding, the forms of a path (existence oracles) and caching.

Over real HTTP (aiohttp's test server on loopback), with the server's own identity
middleware and event streams; the repo is :func:`page_support.write_repo`'s (``olga``
views the map ``shop``, not ``secret``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st
from page_support import StaticSource, snapshot, write_repo
from prometheus_client import CollectorRegistry

from reconciler.loop.view import Snapshot
from reconciler.policy.visibility import Visibility
from reconciler.repo.loader import load_repo, read_tree
from reconciler.server.broker import Event, EventBroker
from reconciler.server.http import Endpoints, Snapshots, build_app
from reconciler.server.identity import Identity, parse_proxies, sees_event
from reconciler.server.sse import EventStreams
from reconciler.statuspage import add_routes

HEADER = "X-Forwarded-Email"
OLGA = {HEADER: "olga@example.com"}


def app_for(
    broker: EventBroker, visibility: Visibility, *, heartbeat_s: float = 15.0
) -> web.Application:
    identity = Identity(HEADER, parse_proxies("127.0.0.1,::1"))
    app = web.Application(middlewares=[identity.middleware()])  # type: ignore[list-item]
    streams = EventStreams(broker, lambda: visibility, heartbeat_s=heartbeat_s)
    app.router.add_get("/api/v1/events", streams.handle)
    return app


Body = Callable[[TestClient[Any, Any]], Awaitable[None]]
Cleanup = Callable[[web.Application], Awaitable[None]]


def executor(cleanup: list[Cleanup]) -> ThreadPoolExecutor:
    """The encoding threads of one application, shut down with it."""
    pool = ThreadPoolExecutor(1)

    async def shut(_app: web.Application) -> None:
        pool.shutdown(wait=True)

    cleanup.append(shut)
    return pool


def run(app: web.Application, body: Body) -> None:
    async def main() -> None:
        async with TestClient(TestServer(app)) as client:
            await body(client)

    asyncio.run(main())


async def read_for(response: Any, seconds: float) -> str:
    """What the stream sends within ``seconds`` (it never ends by itself)."""
    got = b""
    try:
        async with asyncio.timeout(seconds):
            async for chunk in response.content.iter_any():
                got += chunk
    except TimeoutError:
        pass
    return got.decode()


def frames(text: str) -> list[dict[str, str]]:
    """The stream's events (``id``, ``event``, ``data``); comments and ``retry`` left out."""
    found = []
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.split("\n") if ": " in line and line[0] != ":"
        )
        if "event" in fields:
            found.append(fields)
    return found


def shop(broker: EventBroker, n: int) -> None:
    broker.publish("check", {"map": "shop", "component": "db", "check": f"k{n}", "host": "h1"})


def secret(broker: EventBroker, n: int) -> None:
    broker.publish("check", {"map": "secret", "component": "vault", "check": f"s{n}"})


def test_event_ids_do_not_count_what_the_viewer_may_not_see(tmp_path: Path) -> None:
    """The broker's ids grow by one per event of anyone's: between two of olga's, the gap
    would count the secret map's events. Her stream numbers what it sends 1, 2, 3…"""
    broker = EventBroker()
    visibility = Visibility(write_repo(tmp_path / "repo"))

    async def body(client: TestClient[Any, Any]) -> None:
        stream = await client.get("/api/v1/events", headers=OLGA)
        assert stream.status == 200
        await asyncio.sleep(0.1)
        shop(broker, 1)
        for n in range(5):
            secret(broker, n)
        shop(broker, 2)
        sent = frames(await read_for(stream, 0.5))
        stream.close()
        assert [(f["event"], f["id"]) for f in sent] == [("check", "1"), ("check", "2")]

    run(app_for(broker, visibility), body)


def test_resuming_does_not_tell_how_many_hidden_events_came(tmp_path: Path) -> None:
    """Whether the events since an id are replayed, or a ``reset`` says they are too many
    (more than a queue) or no longer kept (older than the ring), depends on how many of
    anyone's came since: asked again and again with an old id, it would tell when the
    secret map was busy. Olga's ``Last-Event-ID`` is always answered with the same
    ``reset``, whatever came since."""
    broker = EventBroker(buffer=40, client_queue=10)
    visibility = Visibility(write_repo(tmp_path / "repo"))

    async def body(client: TestClient[Any, Any]) -> None:
        stream = await client.get("/api/v1/events", headers=OLGA)
        await asyncio.sleep(0.1)
        shop(broker, 1)
        sent = frames(await read_for(stream, 0.3))
        stream.close()
        told = []
        for hidden in (0, 20, 40):  # none, more than a queue, more than the ring
            for n in range(hidden):
                secret(broker, n)
            again = await client.get(
                "/api/v1/events", headers=OLGA | {"Last-Event-ID": sent[0]["id"]}
            )
            told.append(frames(await read_for(again, 0.3)))
            again.close()
        for other in ("0", "7", str(broker.last_id), str(broker.last_id + 10**6)):
            again = await client.get("/api/v1/events", headers=OLGA | {"Last-Event-ID": other})
            told.append(frames(await read_for(again, 0.3)))
            again.close()
        for malformed in ("\u00b2", "x", "99999999999999999999999"):  # the client's own mistake
            bad = await client.get("/api/v1/events", headers=OLGA | {"Last-Event-ID": malformed})
            assert bad.status == 400
            bad.close()
        assert all(t == told[0] for t in told), told
        assert [f["event"] for f in told[0]] == ["reset"]
        assert str(broker.last_id) not in str(told)
        everyone = await client.get("/api/v1/events", headers={"Last-Event-ID": "1"})
        assert everyone.status == 403  # and no identity: no stream at all

    run(app_for(broker, visibility), body)


def test_heartbeats_do_not_tell_whether_hidden_events_come(tmp_path: Path) -> None:
    """A heartbeat came only after a quiet interval of anyone's events: olga, sent
    nothing, would see the heartbeats stop while the secret map is busy."""
    broker = EventBroker(buffer=4096, client_queue=4096)
    visibility = Visibility(write_repo(tmp_path / "repo"))

    async def body(client: TestClient[Any, Any]) -> None:
        stream = await client.get("/api/v1/events", headers=OLGA)

        async def busy() -> None:
            for n in range(40):
                secret(broker, n)
                await asyncio.sleep(0.05)

        reading = asyncio.ensure_future(read_for(stream, 2.0))
        await busy()
        text = await reading
        stream.close()
        assert not frames(text)
        assert ": heartbeat" in text

    run(app_for(broker, visibility, heartbeat_s=0.3), body)


SECRET_TEXT = ("secretmap-q7", "vaulthost-q7", "requests/secretreq-q7.yaml", "remote-q7")
FETCH_FAILED = (
    "no revision applied yet: cannot fetch the map repo: /srv/remote-q7.git: fatal: "
    "unable to create file maps/secretmap-q7.yaml"
)
WRITES_FAILED = (
    "state writes failing (journal: duplicate key value violates unique constraint "
    "DETAIL: Key (path)=(requests/secretreq-q7.yaml) already exists; checks: invalid input "
    'CONTEXT: JSON data, line 1: {"map":"secretmap-q7","host":"vaulthost-q7"})'
)


def probe_app(identity: Identity, *, health: str, ready: str) -> web.Application:
    endpoints = Endpoints(
        registry=CollectorRegistry(),
        snapshot=lambda: Snapshot(None, None, None, None, None, False, (), 0, (), ()),
        health=lambda: (False, health),
        readiness=lambda: ready,
        fetch_now=lambda: None,
        webhook_secret=None,
        count_webhook=lambda _result: None,
    )
    cleanup: list[Cleanup] = []
    snapshots = Snapshots(endpoints.snapshot, executor(cleanup))
    app = build_app(endpoints, broker=EventBroker(), identity=identity, snapshots=snapshots)
    app.on_cleanup.extend(cleanup)
    return app


def test_the_probes_quote_no_operator_text_to_a_viewer() -> None:
    """``/healthz`` and ``/readyz`` answer anyone, identity or not; their reasons quoted a
    fetch error and the database's messages, which may name any map, host or request
    (the operator's, left out of a person's status). With identities enforced they say
    what is wrong in OpsMap's own words; without, everyone reads everything as before."""
    enforced = Identity(HEADER, parse_proxies("127.0.0.1,::1"))

    async def body(client: TestClient[Any, Any]) -> None:
        for headers in ({}, OLGA):
            for path, status, reason in [
                ("/healthz", "unhealthy", "state writes failing"),
                ("/readyz", "not ready", "no revision applied yet"),
            ]:
                for method in (client.get, client.head):
                    answer = await method(path, headers=headers)
                    assert answer.status == 503
                    text = await answer.text()
                    seen = str(answer.headers) + text
                    assert not [t for t in SECRET_TEXT if t in seen], (path, headers)
                    if method is client.get:
                        assert await answer.json() == {"status": status, "reason": reason}

    run(probe_app(enforced, health=WRITES_FAILED, ready=FETCH_FAILED), body)

    async def everyones(client: TestClient[Any, Any]) -> None:
        assert (await (await client.get("/healthz")).json())["reason"] == WRITES_FAILED
        assert (await (await client.get("/readyz")).json())["reason"] == FETCH_FAILED

    run(probe_app(Identity(), health=WRITES_FAILED, ready=FETCH_FAILED), everyones)


def test_a_letter_that_lowercases_into_another_persons_name_is_no_identity() -> None:
    """People are compared without case, by Unicode's lowercasing: ``\\u212a`` (the Kelvin
    sign) lowercases to ``k``, ``\\u212b`` (the angstrom sign) to ``å``, so an account
    named with them at the proxy's provider would be ``karl@…`` or ``åsa@…`` here."""
    identity = Identity(HEADER, parse_proxies("127.0.0.1"))

    def user(value: str) -> str | None:
        return identity.viewer("127.0.0.1", [(HEADER, value)]).user

    assert user("\u212aarl@example.com") is None
    assert user("\u212bsa@example.com") is None
    assert user("KARL@Example.com") == "KARL@Example.com"  # ASCII: compared without case
    assert user("åsa@example.com") == "åsa@example.com"  # lowercase already: as it is
    # Unicode's spaces around a name are no padding to take away: olga is not them
    assert user("\u3000olga@example.com") is None
    assert user("olga@example.com\u2029") is None
    assert user("\x85olga@example.com") is None
    assert user(" olga@example.com\t") == "olga@example.com"


@given(value=st.text(max_size=40))
def test_a_persons_name_lowercases_as_ascii_does(value: str) -> None:
    """Whatever the header holds (all of Unicode), a person is the name as sent (less the
    spaces and tabs around it), which the policies' lowercasing changes only in its ASCII
    letters: two people never become one."""
    identity = Identity(HEADER, parse_proxies("127.0.0.1"))
    found = identity.viewer("127.0.0.1", [(HEADER, value)]).user
    if found is not None:
        assert found == value.strip(" \t")  # the name as sent: only ASCII padding goes
        ascii_lower = "".join(c.lower() if c.isascii() else c for c in found)
        assert found.lower() == ascii_lower
        assert found.isprintable()


def page_app(tmp_path: Path) -> web.Application:
    """The server's application with the page's routes over :mod:`page_support`'s repo and
    snapshot (``secret`` and its ``vault`` on ``h2`` hidden from olga), identities on."""
    source = StaticSource(write_repo(tmp_path / "repo"), snapshot())
    endpoints = Endpoints(
        registry=CollectorRegistry(),
        snapshot=source.snapshot,
        health=lambda: (True, None),
        readiness=lambda: None,
        fetch_now=lambda: None,
        webhook_secret=None,
        count_webhook=lambda _result: None,
        visibility=source.visibility,
    )
    cleanup: list[Cleanup] = []
    app = build_app(
        endpoints,
        broker=EventBroker(),
        identity=Identity(HEADER, parse_proxies("127.0.0.1,::1")),
        snapshots=Snapshots(source.snapshot, executor(cleanup)),
        mount=lambda app: add_routes(app, source),
    )
    app.on_cleanup.extend(cleanup)
    return app


async def raw(port: int, method: str, target: str, headers: dict[str, str]) -> bytes:
    """One request as written (no client normalises its path), the answer without Date."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"{method} {target} HTTP/1.1", "Host: opsmap", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    answer = await reader.read()
    writer.close()
    return b"\r\n".join(
        line for line in answer.split(b"\r\n") if not line.lower().startswith(b"date:")
    )


PATH_FORMS = [
    "/api/v1/maps/{m}",
    "/api/v1/maps/{m}/",
    "/api/v1/maps/{M}",
    "/api/v1/maps/{pm}",
    "/api/v1/maps/{m}/components/{c}",
    "/api/v1/maps/{m}/components/{c}/",
    "/api/v1/maps/{m}/components/{pc}",
    "/api/v1/maps/{m}%2Fcomponents%2F{c}",
    "/api/v1/maps/./{m}",
    "/api/v1/x/../maps/{m}",
    "/api/v1/maps/{m}?component={c}",
    "/static/%2e%2e/api/v1/maps/{m}",
    "/static/..%2Fapi/v1/maps/{m}",
    "//api/v1/maps/{m}",
    "/API/V1/MAPS/{M}",
]


def test_a_hidden_map_answers_as_a_missing_one_in_every_path_form(tmp_path: Path) -> None:
    """``secret`` (its component ``vault``) is hidden from olga and from a request with
    no identity; ``nosuch`` (``zzzzz``) does not exist. Through every form of path
    (encoded, trailing slash, case, dot segments, doubled slash, a query) and GET or HEAD,
    the two answers are the same bytes, status line and headers included, once the names
    the client itself sent are swapped."""
    app = page_app(tmp_path)

    def names(m: str, c: str) -> dict[str, str]:
        pm = "".join(f"%{ord(ch):02X}" for ch in m)
        pc = "".join(f"%{ord(ch):02X}" for ch in c)
        return {"m": m, "M": m.upper(), "pm": pm, "c": c, "pc": pc}

    async def body(client: TestClient[Any, Any]) -> None:
        port = client.port
        assert port is not None
        for headers in ({}, OLGA):
            for form in PATH_FORMS:
                for method in ("GET", "HEAD"):
                    hidden_names, missing_names = names("secret", "vault"), names("nosuch", "zzzzz")
                    hidden = await raw(port, method, form.format(**hidden_names), headers)
                    missing = await raw(port, method, form.format(**missing_names), headers)
                    for key in ("pm", "pc", "M", "m", "c"):
                        hidden = hidden.replace(
                            hidden_names[key].encode(), missing_names[key].encode()
                        )
                    assert hidden == missing, (form, method, headers)
        seen = await raw(port, "GET", "/api/v1/maps/shop/components/db", OLGA)
        assert seen.startswith(b"HTTP/1.1 200")  # what she may view, she is shown

    run(app, body)


def test_no_cache_keeps_one_persons_documents_for_another(tmp_path: Path) -> None:
    """A person's documents are theirs: a cache between the proxy and OpsMap (or in it)
    that kept ``/api/v1/status`` by its URL would give olga's to the next person, or an
    admin's to olga. Every answer with data says ``no-store`` while identities are on."""

    async def body(client: TestClient[Any, Any]) -> None:
        for path in ("/api/v1/status", "/api/v1/maps", "/api/v1/requests", "/api/v1/maps/shop"):
            for method in (client.get, client.head):
                answer = await method(path, headers=OLGA | {"Accept-Encoding": "gzip"})
                assert answer.status == 200, path
                assert answer.headers.get("Cache-Control") == "no-store", path

    run(page_app(tmp_path), body)


def test_an_open_stream_follows_the_viewers_rights_at_each_revision(tmp_path: Path) -> None:
    """Olga's stream is open when a revision takes ``view`` on ``shop`` away from her: what
    comes after is not sent, though the stream began when she could see it (and the
    reverse when it is given back)."""
    before = Visibility(write_repo(tmp_path / "repo"))
    policy = tmp_path / "repo" / "policies" / "p.yaml"
    policy.write_text(
        yaml.safe_dump({"permissions": [{"user": "root@example.com", "role": "admin"}]})
    )
    after = Visibility(load_repo(read_tree(tmp_path / "repo")))
    current = [before]
    broker = EventBroker()
    identity = Identity(HEADER, parse_proxies("127.0.0.1,::1"))
    app = web.Application(middlewares=[identity.middleware()])  # type: ignore[list-item]
    app.router.add_get("/api/v1/events", EventStreams(broker, lambda: current[0]).handle)

    async def body(client: TestClient[Any, Any]) -> None:
        stream = await client.get("/api/v1/events", headers=OLGA)
        await asyncio.sleep(0.1)
        shop(broker, 1)
        await asyncio.sleep(0.1)
        current[0] = after
        shop(broker, 2)
        await asyncio.sleep(0.1)
        current[0] = before
        shop(broker, 3)
        sent = frames(await read_for(stream, 0.5))
        stream.close()
        assert [f["data"].split('"check":"')[1][:2] for f in sent] == ["k1", "k3"]

    run(app, body)


def test_a_burst_of_hidden_events_does_not_end_a_persons_stream(tmp_path: Path) -> None:
    """A stream is dropped when more events than its queue come before it takes them: a
    person's, caught up, was dropped by a burst of the secret map's events (a revision's
    checks all changing at once), and its end told that the burst came. Events it would
    not be sent do not put it behind; those it would, still do."""
    sight = Visibility(write_repo(tmp_path / "repo")).sight("olga@example.com")
    broker = EventBroker(buffer=64, client_queue=8)

    def olgas(event: Event) -> bool:
        return sees_event(sight, event)

    async def main() -> None:
        sub = broker.subscribe(olgas)
        for n in range(40):
            secret(broker, n)
        assert sub.ended is None
        assert sub.backlog == 0
        assert not await sub.wait(0.01)  # nothing for her: not even woken
        shop(broker, 1)
        assert await sub.wait(0.01)
        for n in range(9):
            secret(broker, n)  # behind on one of hers: counted as before
        assert sub.ended is not None

    asyncio.run(main())
