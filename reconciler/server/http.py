"""The reconciler's HTTP endpoint: ``/metrics``, ``/healthz``, ``/api/v1/status``, ``/hooks/git``.

A standard-library threading server: scrapes and API reads are small and rare, and the
server never touches live state; it asks the event loop for a snapshot (see
:class:`reconciler.loop.reconciler.Reconciler.snapshot_from_thread`), and answers 503 with the
reason when the loop does not answer in time. ``/healthz`` never waits for the loop: it
reads the heartbeat the loop keeps current. Every socket read is
bounded by a timeout and every webhook body by a size limit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from reconciler.loop.view import encode_json
from reconciler.server.webhook import MAX_WEBHOOK_BODY, verify_hook

log = logging.getLogger(__name__)

SOCKET_TIMEOUT_S = 10.0


class HttpServerError(Exception):
    """The endpoint cannot listen (address in use, bad address, no permission)."""


@dataclass(frozen=True)
class Endpoints:
    """What the handlers call; each is safe to call from the server's threads."""

    registry: CollectorRegistry
    status: Callable[[], bytes]
    """The status document as JSON; :class:`TimeoutError` (its text the reason) when the
    loop does not answer in time."""
    health: Callable[[], tuple[bool, str | None]]
    """Never waits: whether the loop keeps up, and the reason when it does not."""
    fetch_now: Callable[[], None]
    webhook_secret: bytes | None
    count_webhook: Callable[[str], None]


class _Handler(BaseHTTPRequestHandler):
    server_version = "opsmap"
    timeout = SOCKET_TIMEOUT_S
    endpoints: Endpoints

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            try:
                body = encoder(self.endpoints.registry)
            except TimeoutError as exc:  # the state gauges come from the loop
                self._unavailable(str(exc))
                return
            self._reply(HTTPStatus.OK, body, content_type)
        elif path == "/healthz":
            ok, reason = self.endpoints.health()
            if ok:
                self._json(HTTPStatus.OK, {"status": "ok"})
            else:
                self._unavailable(reason or "unhealthy")
        elif path == "/api/v1/status":
            try:
                status = self.endpoints.status()
            except TimeoutError as exc:
                self._unavailable(str(exc))
                return
            self._reply(HTTPStatus.OK, status, "application/json")
        elif path == "/hooks/git":
            self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "use POST"})
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {path}"})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path != "/hooks/git":
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {path}"})
            return
        result, code, message = self._webhook()
        self.endpoints.count_webhook(result)
        self._json(code, {"result": result, "message": message})

    def _webhook(self) -> tuple[str, HTTPStatus, str]:
        if self.endpoints.webhook_secret is None:
            return "disabled", HTTPStatus.FORBIDDEN, "no webhook secret is configured"
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self.close_connection = True
            return "bad_request", HTTPStatus.LENGTH_REQUIRED, "Content-Length is required"
        length = int(length_header)
        if length > MAX_WEBHOOK_BODY:
            self.close_connection = True
            return "too_large", HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body is too large"
        body = self.rfile.read(length)
        verdict = verify_hook(self.headers, body, self.endpoints.webhook_secret)
        if not verdict.accepted:
            log.warning("webhook from %s refused: %s", self.client_address[0], verdict.reason)
            return "unauthorized", HTTPStatus.UNAUTHORIZED, verdict.reason
        log.debug("webhook from %s: %s", self.client_address[0], verdict.reason)
        self.endpoints.fetch_now()
        return "accepted", HTTPStatus.ACCEPTED, "fetching"

    def _unavailable(self, reason: str) -> None:
        self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "unhealthy", "reason": reason})

    def _json(self, code: HTTPStatus, payload: object) -> None:
        self._reply(code, encode_json(payload), "application/json")

    def _reply(self, code: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)


class HttpEndpoint:
    """Serves the endpoints on ``host:port`` from a background thread."""

    def __init__(self, host: str, port: int, endpoints: Endpoints) -> None:
        handler = type("Handler", (_Handler,), {"endpoints": endpoints})
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise HttpServerError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        self._server.daemon_threads = True
        self._started = False
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="opsmap-http", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()
        self._started = True
        log.info("serving /metrics, /healthz, /api/v1/status on http://%s:%d", *self.address)

    def stop(self) -> None:
        if self._started:  # shutdown() waits for serve_forever, which must have begun
            self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=SOCKET_TIMEOUT_S)
