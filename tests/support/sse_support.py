"""A Server-Sent Events client over a real socket, and ``run_service`` in a thread.

:class:`EventStream` reads ``GET /api/v1/events`` line by line (http.client undoes the
chunked encoding) and gives each event as a dict (``id``, ``event``, ``data`` decoded from
JSON) or a comment (``{"comment": "heartbeat"}``). :class:`ServiceThread` runs
:func:`reconciler.server.service.run_service` on its own loop in a thread, for tests that
set limits a command line does not offer, or look at the broker and the connections.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from e2e_support import WAIT_S, WaitTimeout

from reconciler.loop.reconciler import Reconciler
from reconciler.server.http import HttpEndpoint
from reconciler.server.service import run_service


class EventStream:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        headers: Mapping[str, str] | None = None,
        source_address: tuple[str, int] | None = None,
        path: str = "/api/v1/events",
    ) -> None:
        # reads wait up to WAIT_S: more than the 15 s between heartbeats
        self.conn = http.client.HTTPConnection(
            host, port, timeout=WAIT_S, source_address=source_address
        )
        self.conn.request("GET", path, headers=dict(headers or {}))
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.content_type = self.response.getheader("Content-Type", "")
        self.seen: list[dict[str, Any]] = []
        self.raw = bytearray()
        """Every byte of the stream read so far (what a test says no secret is in)."""

    def next(self) -> dict[str, Any]:
        """The next event or comment (``retry:`` lines are skipped)."""
        fields: dict[str, Any] = {}
        while True:
            raw = self.response.readline()
            self.raw += raw
            if not raw:
                raise EOFError("the server ended the stream")
            line = raw.decode().rstrip("\n")
            if line == "":
                if fields:
                    self.seen.append(fields)
                    return fields
                continue
            if line.startswith(":"):
                comment = {"comment": line[1:].strip()}
                self.seen.append(comment)
                return comment
            name, _, value = line.partition(": ")
            if name == "data":
                fields["data"] = json.loads(value)
            elif name == "id":
                fields["id"] = int(value)
            elif name == "event":
                fields["event"] = value

    def until(
        self, predicate: Callable[[dict[str, Any]], bool], *, what: str, timeout: float = WAIT_S
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            event = self.next()
            if predicate(event):
                return event
        raise WaitTimeout(f"no event {what} within {timeout:g}s (seen: {self.seen[-10:]!r})")

    def close(self) -> None:
        self.conn.close()


class ServiceThread:
    """``run_service(**kw)`` on a loop of its own; ``stop()`` ends it and joins."""

    def __init__(self, **kw: Any) -> None:
        self._kw = kw
        self.started = threading.Event()
        self.reconciler: Reconciler | None = None
        self.http: HttpEndpoint | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name="opsmap-under-test")

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by stop()
            self.error = exc
            self.started.set()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()

        def on_started(reconciler: Reconciler, http: HttpEndpoint) -> None:
            self.reconciler, self.http = reconciler, http
            self.loop = asyncio.get_running_loop()
            self.started.set()

        await run_service(stop=self._stop, on_started=on_started, **self._kw)

    def start(self) -> ServiceThread:
        self.thread.start()
        assert self.started.wait(WAIT_S), "run_service did not start"
        assert self.error is None, self.error
        return self

    @property
    def address(self) -> tuple[str, int]:
        assert self.http is not None
        return self.http.address

    def on_loop(self, callback: Callable[[], object]) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(callback)

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive(), "run_service did not stop"
        assert self.error is None, self.error


def service_kwargs(repo: str, state_dir: Path, **kw: Any) -> dict[str, Any]:
    return {
        "repo": repo,
        "branch": "main",
        "listen": ("127.0.0.1", 0),
        "state_dir": state_dir,
        "poll_interval_s": 1.0,
        "webhook_secret": None,
        **kw,
    }
