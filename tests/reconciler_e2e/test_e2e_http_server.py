"""The HTTP endpoint as clients meet it, over real sockets: a real ``opsmap run`` (or
``run_service`` in a thread, where a test sets limits) on a real git repo.

HTTP/1.1 with keep-alive, HEAD, gzip when accepted, ``Server: opsmap`` on every answer
(aiohttp's own errors included), ``/readyz`` before and after a revision runs, the bound
on connections with the probes' reserved slots, and slow clients — one that never
finishes its request, one that never reads its event stream — dropped while the endpoint
goes on answering.
"""

from __future__ import annotations

import gzip
import http.client
import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_support import (
    HTTP_TIMEOUT_S,
    Opsmap,
    command_check,
    component,
    repo_files,
    wait_for,
)
from gitrepos import ALICE, BareRepo, Clone
from sse_support import EventStream, ServiceThread, service_kwargs

from reconciler.server.connections import Limits

Start = Callable[..., Opsmap]


def many_components(count: int = 40) -> dict[str, str | bytes | None]:
    ok = command_check("ok", "true", interval=3600)
    return repo_files([component(f"component-{i:03}", [ok]) for i in range(count)])


def raw(host: str, port: int, data: bytes) -> bytes:
    """Send ``data``, read until the server closes (or the timeout)."""
    with socket.create_connection((host, port), timeout=HTTP_TIMEOUT_S) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_head_gzip_keep_alive_and_the_server_header(
    remote: BareRepo, clone: Clone, opsmap: Start
) -> None:
    sha = clone.commit("many components", author=ALICE, files=many_components())
    clone.push()
    service = opsmap(remote.url, poll_interval=3600)
    service.wait_applied(sha)

    conn = http.client.HTTPConnection(service.host, service.port, timeout=HTTP_TIMEOUT_S)
    try:
        conn.request("GET", "/api/v1/status")
        plain = conn.getresponse()
        body = plain.read()
        assert plain.version == 11
        assert plain.status == 200
        assert plain.getheader("Server") == "opsmap"
        assert plain.getheader("Content-Encoding") is None
        assert json.loads(body)["last_applied_revision"] == sha

        conn.request("HEAD", "/api/v1/status")  # the same connection: kept alive
        head = conn.getresponse()
        assert head.status == 200
        assert head.read() == b""
        assert head.getheader("Server") == "opsmap"
        assert int(head.getheader("Content-Length") or 0) > 0

        conn.request("GET", "/api/v1/status", headers={"Accept-Encoding": "gzip"})
        zipped = conn.getresponse()
        packed = zipped.read()
        assert zipped.getheader("Content-Encoding") == "gzip"
        assert zipped.getheader("Vary") == "Accept-Encoding"
        assert len(packed) < len(body)
        assert json.loads(gzip.decompress(packed))["last_applied_revision"] == sha

        conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip;q=0, identity"})
        metrics = conn.getresponse()
        assert metrics.getheader("Content-Encoding") is None
        assert b"opsmap_component_status" in metrics.read()

        conn.request("GET", "/no/such/thing")
        missing = conn.getresponse()
        assert missing.status == 404
        assert missing.getheader("Server") == "opsmap"
        assert json.loads(missing.read()) == {"error": "no such endpoint: /no/such/thing"}
    finally:
        conn.close()

    answer = raw(service.host, service.port, b"NOT HTTP AT ALL\r\n\r\n")
    head_lines = answer.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    assert head_lines[0].startswith("HTTP/1.")
    assert " 400 " in head_lines[0]
    assert "Server: opsmap" in head_lines
    assert not any("Python" in line or "aiohttp" in line for line in head_lines)
    assert service.healthz() == 200


def test_readyz_answers_503_until_a_revision_runs(
    remote: BareRepo, clone: Clone, opsmap: Start
) -> None:
    clone.commit("broken", author=ALICE, files={"maps/e2e.yaml": "name: [unclosed\n"})
    clone.push()
    service = opsmap(remote.url, poll_interval=1)
    wait_for(lambda: service.status()["revision_rejected"] or None, what="the revision rejected")
    code, body = service.request("GET", "/readyz")
    assert code == 503
    answer = json.loads(body)
    assert answer["status"] == "not ready"
    assert answer["reason"].startswith("no revision applied yet")
    assert service.healthz() == 200  # alive all the same

    sha = clone.commit("fixed", author=ALICE, files=many_components(2))
    clone.push()
    service.wait_applied(sha)
    code, body = wait_for(
        lambda: (got := service.request("GET", "/readyz"))[0] == 200 and got,
        what="/readyz to answer 200",
    )
    assert json.loads(body) == {"status": "ready"}


def test_connections_are_bounded_and_the_probes_keep_their_slots(
    remote: BareRepo, clone: Clone, tmp_path: Path
) -> None:
    clone.commit("one map", author=ALICE, files=many_components(2))
    clone.push()
    limits = Limits(max_connections=3, probe_slots=2)
    service = ServiceThread(**service_kwargs(remote.url, tmp_path / "state", limits=limits))
    service.start()
    host, port = service.address
    assert service.http is not None
    connections = service.http.connections
    streams: list[EventStream] = []
    idle: list[socket.socket] = []
    try:
        streams = [EventStream(host, port) for _ in range(3)]  # every ordinary slot, held
        assert all(s.status == 200 for s in streams)
        wait_for(lambda: b" 200 " in raw(host, port, request("/readyz")), what="ready")
        # past the bound, a probe is answered on a reserved slot, then closed
        probe = raw(host, port, request("/healthz", keep_alive=True))
        assert probe.startswith(b"HTTP/1.1 200 "), probe
        assert b"Connection: close" in probe
        for path in ("/api/v1/status", "/api/v1/events", "/"):
            refused = raw(host, port, request(path))
            assert refused.startswith(b"HTTP/1.1 503 "), refused
            assert b"too many connections" in refused
            assert b"Retry-After: 1" in refused
            assert b"Server: opsmap" in refused

        # a flood of connections that send nothing takes no probe's place: each new
        # connection takes the place of the one that waited longest for a request
        idle = [socket.create_connection((host, port), timeout=HTTP_TIMEOUT_S) for _ in range(8)]
        for path in ("/healthz", "/readyz"):
            assert raw(host, port, request(path)).startswith(b"HTTP/1.1 200 "), path
        assert raw(host, port, request("/metrics")).startswith(b"HTTP/1.1 503 ")  # no probe
        assert connections.evicted >= len(idle) - 2
        assert sum(map(closed, idle)) >= len(idle) - 2  # the oldest were closed for them

        for sock in idle:
            sock.close()
        streams.pop().close()
        assert wait_for(lambda: b" 200 " in raw(host, port, request("/api/v1/status")), what="room")
    finally:
        for sock in idle:
            sock.close()
        for stream in streams:
            stream.close()
        service.stop()


def test_refused_only_when_every_connection_is_busy_and_slow_requests_closed(
    remote: BareRepo, clone: Clone, tmp_path: Path
) -> None:
    clone.commit("one map", author=ALICE, files=many_components(1))
    clone.push()
    limits = Limits(max_connections=2, probe_slots=0, request_timeout_s=1.0)
    service = ServiceThread(**service_kwargs(remote.url, tmp_path / "state", limits=limits))
    service.start()
    host, port = service.address
    streams: list[EventStream] = []
    try:
        streams = [EventStream(host, port) for _ in range(2)]  # busy: nothing to take over
        refused = raw(host, port, request("/healthz"))
        assert refused.startswith(b"HTTP/1.1 503 ")
        assert b"too many connections" in refused
        assert b"Retry-After: 1" in refused
        streams.pop().close()
        count = service.http.connections  # the server sees the close in its own time
        assert wait_for(lambda: count.open < limits.max_connections, what="a free connection")

        # a client that never finishes its request is closed, the endpoint goes on
        with socket.create_connection((host, port), timeout=HTTP_TIMEOUT_S) as slow:
            slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # no blank line, ever
            assert slow.recv(1024) == b""
        assert wait_for(lambda: http_get(host, port, "/healthz") == 200, what="room again")
    finally:
        for stream in streams:
            stream.close()
        service.stop()


@pytest.mark.parametrize(
    ("events", "by"),
    [(200, "the send timeout"), (600, "its queue's bound")],
)
def test_a_stream_nobody_reads_is_dropped_not_buffered(
    remote: BareRepo, clone: Clone, tmp_path: Path, events: int, by: str
) -> None:
    """200 events of 40 kB (8 MB) are more than the kernel's socket buffers take, and fewer
    than the client's queue holds: the writer waits, and the send timeout drops the
    connection. 600 are more than a queue holds: the stream is ended at once."""
    clone.commit("one map", author=ALICE, files=many_components(2))
    clone.push()
    limits = Limits(send_timeout_s=1.0)
    service = ServiceThread(**service_kwargs(remote.url, tmp_path / "state", limits=limits))
    service.start()
    host, port = service.address
    assert service.http is not None
    broker, connections = service.http.broker, service.http.connections
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(HTTP_TIMEOUT_S)
        sock.connect((host, port))
        sock.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: broker.subscribers == 1, what="the stream subscribed")
        big = {"map": "e2e", "component": "c", "message": "x" * 40_000}

        def burst() -> None:
            for _ in range(events):  # far more than the socket buffers hold
                broker.publish("check", big)

        service.on_loop(burst)
        wait_for(lambda: broker.subscribers == 0, what=f"the unread stream dropped by {by}")
        if events > broker.client_queue:
            assert broker.dropped == 1
        else:
            assert connections.dropped == 1
            assert broker.dropped == 0
        assert http_get(host, port, "/healthz") == 200
        received = 0
        try:
            while chunk := sock.recv(65536):
                received += len(chunk)
        except ConnectionResetError:
            pass
        assert received < events * 40_000  # what it did not read is not kept for it
    finally:
        sock.close()
        service.stop()


def test_event_streams_send_heartbeats(remote: BareRepo, clone: Clone, tmp_path: Path) -> None:
    clone.commit("one map", author=ALICE, files=many_components(1))
    clone.push()
    service = ServiceThread(**service_kwargs(remote.url, tmp_path / "state", heartbeat_s=0.2))
    service.start()
    stream = EventStream(*service.address)
    try:
        assert stream.status == 200
        assert stream.content_type.startswith("text/event-stream")
        stream.until(lambda e: e.get("comment") == "heartbeat", what="a heartbeat")
    finally:
        stream.close()
        service.stop()


def closed(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` already (without waiting to know)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except BlockingIOError:  # nothing to read: still open
        return False


def request(path: str, *, keep_alive: bool = False) -> bytes:
    close = b"" if keep_alive else b"Connection: close\r\n"
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + close + b"\r\n"


def http_get(host: str, port: int, path: str) -> int:
    conn = http.client.HTTPConnection(host, port, timeout=HTTP_TIMEOUT_S)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()
