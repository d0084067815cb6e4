"""The reconciler's HTTP endpoint, on its own event loop (aiohttp).

``/metrics``, ``/healthz``, ``/readyz``, ``/api/v1/status``, ``GET /api/v1/events`` (Server-
Sent Events, :mod:`.sse`) and ``POST /hooks/git``, plus what :func:`build_app`'s ``mount``
adds (the status page). Why aiohttp: it runs on the loop the reconciler already has (no
second server process, no thread per client), streams responses (the events), speaks
HTTP/1.1 with keep-alive, ``HEAD`` and compression, and is one locked dependency.

The loop is never held long: a snapshot of the live state is built on the loop (shared by
the requests that come while it is fresh, see :class:`Snapshots`), and what takes time
with it — the metrics exposition, the status JSON — is done in a worker thread from that
immutable snapshot. Connections are bounded and slow clients dropped (:mod:`.connections`),
each client has its share of streams and requests (:mod:`.clients`), the probes are
answered past every bound; every webhook body is capped and read under a timeout.
``Server:`` says ``opsmap``, no version.

With an operator listener (``opsmap run --metrics-listen``), ``/metrics`` is served there
only, beside ``/healthz`` and ``/readyz`` (:func:`build_operator_app`), so that it can be
firewalled apart from the page; the probes stay on the main listener too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from reconciler.loop.bridge import no_collection
from reconciler.loop.metrics import expose
from reconciler.loop.statusjson import StatusJson
from reconciler.loop.view import Snapshot, encode_json
from reconciler.loop.viewers import RequestTarget, seen_by
from reconciler.policy.visibility import Visibility
from reconciler.server.broker import EventBroker
from reconciler.server.clients import CLIENT_LIMITS, PROBES, ClientLimits
from reconciler.server.connections import (
    SERVER_NAME,
    ConnectionCount,
    GuardedSite,
    Limits,
    same_port,
)
from reconciler.server.identity import EVERYONE, Identity, Viewer, sight_of
from reconciler.server.sse import HEARTBEAT_S, EventStreams
from reconciler.server.webhook import MAX_WEBHOOK_BODY, verify_hook

log = logging.getLogger(__name__)

SNAPSHOT_REUSE = 4.0
"""Requests get the last snapshot again while it is younger than this many times what it
took to build, and no check changed since: however often the endpoint is read, building
snapshots takes at most a fifth of the loop's time (a small repo's, built in a
millisecond, is always fresh), and a changed check shows in the next answer."""
COMPRESS_MIN_BYTES = 1024
ENCODER_THREADS = 2
"""Threads that encode documents: apart from the default executor, which git uses."""


class HttpServerError(Exception):
    """The endpoint cannot listen (address in use, bad address, no permission)."""


@dataclass(frozen=True)
class Endpoints:
    """What the handlers call, on the event loop; none of them waits."""

    registry: CollectorRegistry
    snapshot: Callable[[], Snapshot]
    """The live state's snapshot (built on the loop)."""
    health: Callable[[], tuple[bool, str | None]]
    """Liveness from the heartbeat: whether the loop keeps up, and the reason if not."""
    readiness: Callable[[], str | None]
    """None when ready (a revision applied, the loop current), else why not."""
    fetch_now: Callable[[], None]
    webhook_secret: bytes | None
    count_webhook: Callable[[str], None]
    visibility: Callable[[], Visibility] = field(default=lambda: Visibility(None))
    """Who may view what at the applied revision (for the viewers' filters)."""
    request_target: RequestTarget = field(default=lambda path: None)
    """What each request targets (a filtered viewer sees the requests whose target it sees)."""


class Snapshots:
    """Snapshots built on the loop, and the status JSON encoded off it."""

    def __init__(
        self,
        build: Callable[[], Snapshot],
        executor: ThreadPoolExecutor,
        *,
        generation: Callable[[], object] = lambda: None,
    ) -> None:
        """``generation``: what changes whenever a check does (the reconciler's
        :attr:`~reconciler.loop.view.CheckViews.generation`)."""
        self._build = build
        self._executor = executor
        self._generation = generation
        self._last: tuple[float, float, object, Snapshot] | None = None
        """When the last snapshot was built, what that cost, the generation, the snapshot."""
        self._status: tuple[Snapshot, int, asyncio.Future[bytes]] | None = None
        """Everyone's status JSON being encoded or last encoded: its snapshot, its number."""
        self._encodes = 0
        """How many of those were started."""
        self._json = StatusJson()
        """The checks' JSON, kept from everyone's last status (:mod:`..loop.statusjson`)."""

    def current(self) -> Snapshot:
        """On the loop: the last snapshot while fresh (:data:`SNAPSHOT_REUSE`) and no check
        changed, else a new one."""
        now = time.monotonic()
        last = self._last
        if (
            last is not None
            and now - last[0] < SNAPSHOT_REUSE * last[1]
            and last[2] == self._generation()
        ):
            return last[3]
        with no_collection():
            snapshot = self._build()
        finished = time.monotonic()
        self._last = (finished, finished - now, self._generation(), snapshot)
        return snapshot

    def _in_thread(self, work: Callable[[], bytes]) -> asyncio.Future[bytes]:
        return asyncio.get_running_loop().run_in_executor(self._executor, work)

    async def off_loop(self, work: Callable[[], bytes]) -> bytes:
        return await self._in_thread(work)

    async def status(self, seen: Callable[[Snapshot], Snapshot] | None) -> bytes:
        """The ``/api/v1/status`` JSON of what one viewer sees (``seen``: a
        :func:`~reconciler.loop.viewers.seen_by`, applied in the worker thread: the
        snapshot is immutable); everyone's (``seen`` None) is encoded once at a time: a
        request that comes while one is encoded waits for it, then shares the next one
        (or that one, if of the same snapshot). Each answer shows the state as it was
        when its request came, or later; a flood of requests costs an encoding at a time."""
        if seen is not None:
            snapshot = self.current()
            return await self.off_loop(lambda: self._json.encode(seen(snapshot), keep=False))
        came = self._encodes
        running = self._status
        if running is not None and not running[2].done():
            await asyncio.wait([running[2]])
        snapshot = self.current()
        shared = self._status
        if shared is None or (shared[0] is not snapshot and shared[1] <= came):
            self._encodes += 1
            future = self._in_thread(lambda: self._json.encode(snapshot))
            shared = self._status = (snapshot, self._encodes, future)
        return await asyncio.shield(shared[2])


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(status: int, payload: object) -> web.Response:
    return web.Response(status=status, body=encode_json(payload), content_type="application/json")


def unavailable(reason: str, status: str = "unhealthy") -> web.Response:
    return json_response(HTTPStatus.SERVICE_UNAVAILABLE, {"status": status, "reason": reason})


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own 404 and 405 as the JSON the API speaks."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return json_response(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {request.path}"})
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        return json_response(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"use {allowed}"})


def accepts_gzip(header: str) -> bool:
    """Whether an ``Accept-Encoding`` value accepts gzip (``gzip`` or ``*``, q above 0)."""
    for part in header.split(","):
        coding, *params = (p.strip() for p in part.split(";"))
        if coding.lower() not in ("gzip", "*"):
            continue
        q = 1.0
        for param in params:
            if param.lower().startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        return q > 0
    return False


@web.middleware
async def compress(request: web.Request, handler: Handler) -> web.StreamResponse:
    """gzip for a client that accepts it, on bodies worth it (never on event streams)."""
    response = await handler(request)
    if isinstance(response, web.Response) and not response.prepared:
        body = response.body
        if isinstance(body, bytes) and len(body) >= COMPRESS_MIN_BYTES:
            response.headers["Vary"] = "Accept-Encoding"
            if accepts_gzip(request.headers.get("Accept-Encoding", "")):
                response.enable_compression(web.ContentCoding.gzip)
    return response


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER_NAME


class Api:
    """The handlers of the reconciler's own endpoints."""

    def __init__(self, endpoints: Endpoints, snapshots: Snapshots, limits: Limits) -> None:
        self.endpoints = endpoints
        self.snapshots = snapshots
        self.limits = limits

    def seen_by(self, request: web.Request) -> Callable[[Snapshot], Snapshot] | None:
        """The filter of what the request's viewer sees (None: everything)."""
        viewer: Viewer = request.get("viewer", EVERYONE)
        if viewer.sees_everything:
            return None
        sight, target = sight_of(viewer, self.endpoints.visibility()), self.endpoints.request_target
        return functools.partial(seen_by, sight=sight, target=target)

    async def metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        snapshot = self.snapshots.current()
        registry = self.endpoints.registry
        body = await self.snapshots.off_loop(lambda: expose(registry, snapshot, encoder))
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def healthz(self, request: web.Request) -> web.Response:
        ok, reason = self.endpoints.health()
        if ok:
            return json_response(HTTPStatus.OK, {"status": "ok"})
        return unavailable(reason or "unhealthy")

    async def readyz(self, request: web.Request) -> web.Response:
        reason = self.endpoints.readiness()
        if reason is None:
            return json_response(HTTPStatus.OK, {"status": "ready"})
        return unavailable(reason, "not ready")

    async def status(self, request: web.Request) -> web.Response:
        body = await self.snapshots.status(self.seen_by(request))
        return web.Response(body=body, content_type="application/json")

    async def hook(self, request: web.Request) -> web.Response:
        result, code, message = await self._webhook(request)
        self.endpoints.count_webhook(result)
        response = json_response(code, {"result": result, "message": message})
        if code in (HTTPStatus.LENGTH_REQUIRED, HTTPStatus.REQUEST_ENTITY_TOO_LARGE):
            response.force_close()  # the body is never read
        return response

    async def _webhook(self, request: web.Request) -> tuple[str, HTTPStatus, str]:
        secret = self.endpoints.webhook_secret
        if secret is None:
            return "disabled", HTTPStatus.FORBIDDEN, "no webhook secret is configured"
        length = request.content_length
        if length is None:
            return "bad_request", HTTPStatus.LENGTH_REQUIRED, "Content-Length is required"
        if length > MAX_WEBHOOK_BODY:
            return "too_large", HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body is too large"
        try:
            async with asyncio.timeout(self.limits.body_timeout_s):
                body = await request.content.readexactly(length)
        except (TimeoutError, asyncio.IncompleteReadError):
            return "bad_request", HTTPStatus.REQUEST_TIMEOUT, "the body did not arrive in time"
        verdict = verify_hook(request.headers, body, secret)
        if not verdict.accepted:
            log.warning("webhook from %s refused: %s", request.remote, verdict.reason)
            return "unauthorized", HTTPStatus.UNAUTHORIZED, verdict.reason
        log.debug("webhook from %s: %s", request.remote, verdict.reason)
        self.endpoints.fetch_now()
        return "accepted", HTTPStatus.ACCEPTED, "fetching"

    async def get_hook(self, request: web.Request) -> web.Response:
        return json_response(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "use POST"})


Mount = Callable[[web.Application], None]
EVENTS = "/api/v1/events"
METRICS = "/metrics"


def build_app(
    endpoints: Endpoints,
    *,
    broker: EventBroker,
    identity: Identity | None = None,
    snapshots: Snapshots,
    limits: Limits | None = None,
    heartbeat_s: float = HEARTBEAT_S,
    mount: Mount | None = None,
    metrics: bool = True,
) -> web.Application:
    """The application: the reconciler's endpoints, and what ``mount`` adds (the page's
    routes); every request has ``request["viewer"]`` (:class:`~.identity.Viewer`).
    ``metrics`` False: no ``/metrics`` here (it is on the operator listener)."""
    identity = identity or Identity()
    limits = limits or Limits()
    # the reserved slots answer the probes alone: answered at once, waiting for nothing,
    # they hold a slot no longer than that (a scrape, encoded in a thread, would)
    clients = ClientLimits(limits, streams=frozenset({EVENTS}), reserved=PROBES)
    app = web.Application(
        middlewares=[
            errors_as_json,
            identity.middleware(),  # type: ignore[list-item]
            clients.middleware(),  # type: ignore[list-item]
            compress,
        ],
        client_max_size=MAX_WEBHOOK_BODY,
    )
    app.on_response_prepare.append(_server_header)
    app[CLIENT_LIMITS] = clients
    api = Api(endpoints, snapshots, limits)
    streams = EventStreams(
        broker, endpoints.visibility, heartbeat_s=heartbeat_s, max_age_s=limits.stream_max_age_s
    )
    if metrics:
        app.router.add_get(METRICS, api.metrics)
    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/readyz", api.readyz)
    app.router.add_get("/api/v1/status", api.status)
    app.router.add_get(EVENTS, streams.handle)
    app.router.add_post("/hooks/git", api.hook)
    app.router.add_get("/hooks/git", api.get_hook)
    if mount is not None:
        mount(app)
    return app


OPERATOR_LIMITS = Limits(max_connections=32, probe_slots=8, requests_per_client=8)
"""The operator listener's: Prometheus and the probes, a few connections at a time."""


def build_operator_app(endpoints: Endpoints, *, snapshots: Snapshots) -> web.Application:
    """``/metrics``, ``/healthz`` and ``/readyz`` alone: the operator listener's app."""
    clients = ClientLimits(OPERATOR_LIMITS, reserved=PROBES | {METRICS})
    app = web.Application(
        middlewares=[errors_as_json, clients.middleware(), compress],  # type: ignore[list-item]
        client_max_size=1024,
    )
    app.on_response_prepare.append(_server_header)
    app[CLIENT_LIMITS] = clients
    api = Api(endpoints, snapshots, OPERATOR_LIMITS)
    app.router.add_get(METRICS, api.metrics)
    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/readyz", api.readyz)
    return app


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (listening begins when the endpoint starts)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise HttpServerError(f"cannot listen on {host}:{port}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise HttpServerError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


class Listener:
    """One application served on one bound socket, within its :class:`Limits`."""

    def __init__(self, sock: socket.socket, app: web.Application, limits: Limits) -> None:
        self.sock, self.app, self.limits = sock, app, limits
        self.connections = ConnectionCount(limits)
        self._runner: web.AppRunner | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> None:
        runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None)
        await runner.setup()
        self._runner = runner
        site = GuardedSite(
            runner,
            self.sock,
            count=self.connections,
            handler_args={
                "keepalive_timeout": self.limits.request_timeout_s,
                "lingering_time": 1.0,
                "access_log": None,
            },
        )
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.sock.close()


AppFactory = Callable[[Snapshots], web.Application]


class HttpEndpoint:
    """Serves an application on ``host:port`` from the running loop, and the operator's
    (:func:`build_operator_app`) on ``operator_listen`` when given."""

    def __init__(
        self,
        host: str,
        port: int,
        app: AppFactory,
        *,
        snapshot: Callable[[], Snapshot],
        broker: EventBroker,
        limits: Limits | None = None,
        generation: Callable[[], object] = lambda: None,
        operator_listen: tuple[str, int] | None = None,
        operator_app: AppFactory | None = None,
    ) -> None:
        """``generation``: see :class:`Snapshots`."""
        self.limits = limits or Limits()
        self.broker = broker
        main = bind(host, port)
        operator = None
        if operator_listen is not None:
            try:
                operator = bind(*operator_listen)
            except HttpServerError:
                main.close()
                raise
            if same_port(main.getsockname(), operator.getsockname()):
                main.close()
                operator.close()
                where = f"{operator_listen[0]}:{operator_listen[1]}"
                raise HttpServerError(f"cannot listen on {where} for /metrics: it is --listen's")
        self._executor = ThreadPoolExecutor(ENCODER_THREADS, thread_name_prefix="opsmap-encode")
        self.snapshots = Snapshots(snapshot, self._executor, generation=generation)
        self.main = Listener(main, app(self.snapshots), self.limits)
        self.operator: Listener | None = None
        if operator is not None:
            assert operator_app is not None, "an operator listener needs its app"
            self.operator = Listener(operator, operator_app(self.snapshots), OPERATOR_LIMITS)

    @property
    def app(self) -> web.Application:
        return self.main.app

    @property
    def connections(self) -> ConnectionCount:
        return self.main.connections

    @property
    def address(self) -> tuple[str, int]:
        return self.main.address

    async def start(self) -> None:
        await self.main.start()
        log.info("serving on http://%s:%d", *self.address)
        if self.operator is not None:
            await self.operator.start()
            log.info("serving /metrics, /healthz, /readyz on http://%s:%d", *self.operator.address)

    async def stop(self) -> None:
        self.broker.close()  # event streams end first, so that nothing waits for them
        await self.main.stop()
        if self.operator is not None:
            await self.operator.stop()
        self._executor.shutdown(wait=False, cancel_futures=True)
