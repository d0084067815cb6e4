"""One client cannot take the endpoint from the others, through a real ``opsmap run``.

A client that opens more event streams than ``--max-streams-per-client`` and never reads
them gets ``429`` for the extra ones; while it holds the rest, ``/healthz``, ``/readyz``
and ``/metrics`` answer ``200`` and another client gets its stream and reads its events.
Its streams carry a check that changes state every second, so the client's receive
buffer (made small, as a stalled client's fills) is soon full and its window shut: the
write deadline (``--send-timeout``) drops each of them, seen as the client's sockets
closed (reset) without a byte read, and the client has its share again.

Behind the trusted proxy, every person has the proxy's address: each has a share of
their own. Requests in progress are bounded per client too, the probes never.

With ``--metrics-listen``, ``/metrics`` is served there (with the probes) and no longer
on the main listener.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from e2e_support import (
    HTTP_TIMEOUT_S,
    Opsmap,
    command_check,
    component,
    free_port,
    repo_files,
    sample_value,
    wait_for,
)
from gitrepos import ALICE, BareRepo, Clone
from sse_support import EventStream

Start = Callable[..., Opsmap]
STREAMS_PER_CLIENT = 3
OTHER_CLIENT = "127.0.0.2"  # loopback too, but another address: another client
PROXY = "127.0.0.3"
TCP_CLOSE = 7
"""``tcpi_state`` of a socket whose connection was reset (Linux's ``TCP_CLOSE``)."""


def flapping_repo(tmp_path: Path, count: int = 6) -> dict[str, str | bytes | None]:
    """Components whose check changes state on every run (every second): events."""
    tmp_path.mkdir(exist_ok=True)
    components = []
    for i in range(count):
        flag = tmp_path / f"flap-{i}"
        toggle = f"if [ -e '{flag}' ]; then rm -f '{flag}'; exit 2; fi; touch '{flag}'"
        components.append(component(f"flapper-{i}", [command_check("flap", toggle)]))
    return repo_files(components)


def stalled_stream(host: str, port: int) -> socket.socket:
    """An event stream whose client never reads (a small receive buffer: it fills)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.settimeout(HTTP_TIMEOUT_S)
    sock.connect((host, port))
    sock.sendall(f"GET /api/v1/events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return sock


def status_code(sock: socket.socket) -> bytes:
    """The code of the status line ``HTTP/1.1 NNN``, read alone."""
    head = b""
    while len(head) < 12 and (chunk := sock.recv(12 - len(head))):
        head += chunk
    return head[9:12]


def reset(sock: socket.socket) -> bool:
    """Whether the server dropped the connection (read nothing to know it)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    return info[0] == TCP_CLOSE


def answer(host: str, port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=HTTP_TIMEOUT_S)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


@contextmanager
def reading(stream: EventStream) -> Iterator[list[str]]:
    """Read ``stream`` in a thread (a client that keeps up); the kinds of event seen."""
    seen: list[str] = []

    def read() -> None:
        try:
            while True:
                seen.append(str(stream.next().get("event", "comment")))
        except (OSError, EOFError, ValueError):
            return  # closed by the test

    thread = threading.Thread(target=read, name="reading-client", daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        sock = stream.conn.sock
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)  # the thread reads the end, then it is closed
        thread.join(HTTP_TIMEOUT_S)
        stream.close()


def test_a_client_that_never_reads_keeps_its_share_only_and_is_dropped(
    remote: BareRepo, clone: Clone, opsmap: Start, tmp_path: Path
) -> None:
    sha = clone.commit("flappers", author=ALICE, files=flapping_repo(tmp_path / "flags"))
    clone.push()
    service = opsmap(
        remote.url,
        poll_interval=3600,
        extra_args=[
            "--max-streams-per-client", str(STREAMS_PER_CLIENT),
            "--send-timeout", "1",
        ],
    )  # fmt: skip
    service.wait_applied(sha)
    host, port = service.host, service.port

    def probes_answer() -> None:
        for path in ("/healthz", "/readyz", "/metrics"):
            code, _, body = answer(host, port, path)
            assert code == 200, f"{path} answered {code} while a client stalls: {body[:200]!r}"

    wait_for(lambda: answer(host, port, "/readyz")[0] == 200, what="/readyz 200")
    stalled = [stalled_stream(host, port) for _ in range(STREAMS_PER_CLIENT)]
    try:
        code, headers, body = answer(host, port, "/api/v1/events")  # one more: over its share
        assert code == 429, body
        assert int(headers["Retry-After"]) > 0
        assert "too many event streams" in json.loads(body)["reason"]
        probes_answer()

        other = EventStream(host, port, source_address=(OTHER_CLIENT, 0))
        assert other.status == 200
        with reading(other) as seen:
            wait_for(lambda: "check" in seen, what="the other client's events")

            def dropped() -> bool:
                probes_answer()  # throughout
                return all(reset(sock) for sock in stalled)

            wait_for(dropped, what="the stalled streams dropped", interval=0.5)
            metrics = answer(host, port, "/metrics")[2].decode()
            assert sample_value(metrics, "opsmap_http_dropped_total", reason="send_timeout") == 3
            assert sample_value(metrics, "opsmap_http_refused_total", reason="client_streams") == 1
            assert sample_value(metrics, "opsmap_http_event_streams") == 1  # the reader's
            before = len(seen)
            # its share is free again, and the reading client was never dropped
            again = EventStream(host, port)
            try:
                assert again.status == 200
            finally:
                again.close()
            wait_for(lambda: len(seen) > before, what="the other client still served")
        # refusals are not worth a log line (a bare "429" would match a port number)
        logged = service.stderr()
        assert "too many event streams" not in logged
        assert not re.search(r"(?<![\d:.])429(?!\d)", logged)
    finally:
        for sock in stalled:
            sock.close()


def test_metrics_listen_serves_metrics_apart_from_the_page(
    remote: BareRepo, clone: Clone, opsmap: Start, tmp_path: Path
) -> None:
    sha = clone.commit("flappers", author=ALICE, files=flapping_repo(tmp_path / "flags", 1))
    clone.push()
    metrics_port = free_port()
    service = opsmap(
        remote.url, poll_interval=3600, extra_args=["--metrics-listen", f"127.0.0.1:{metrics_port}"]
    )
    service.wait_applied(sha)
    code, _, body = answer(service.host, metrics_port, "/metrics")
    assert code == 200
    assert sample_value(body.decode(), "opsmap_component_status", status="ok") is not None
    for probe in ("/healthz", "/readyz"):
        wait_for(lambda p=probe: answer(service.host, metrics_port, p)[0] == 200, what=probe)
        assert answer(service.host, service.port, probe)[0] == 200  # the main one's too
    code, _, body = answer(service.host, service.port, "/metrics")
    assert code == 404, "the main listener no longer serves /metrics"
    assert answer(service.host, metrics_port, "/api/v1/status")[0] == 404  # nor the page here
    assert answer(service.host, service.port, "/api/v1/status")[0] == 200


def test_behind_the_trusted_proxy_each_person_has_a_share_of_their_own(
    remote: BareRepo, clone: Clone, opsmap: Start, tmp_path: Path
) -> None:
    """Everyone behind the proxy has its address: the streams are counted per person."""
    sha = clone.commit("flappers", author=ALICE, files=flapping_repo(tmp_path / "flags", 1))
    clone.push()
    service = opsmap(
        remote.url,
        poll_interval=3600,
        extra_args=[
            "--max-streams-per-client", "2",
            "--trusted-user-header", "X-Forwarded-Email",
            "--trusted-proxy", f"127.0.0.1,{PROXY}",  # the test's own reads: as a person
        ],
        headers={"X-Forwarded-Email": "ops@example.com"},
    )  # fmt: skip
    service.wait_applied(sha)

    def stream(user: str | None) -> EventStream:
        headers = {"X-Forwarded-Email": user} if user else {}
        return EventStream(service.host, service.port, headers=headers, source_address=(PROXY, 0))

    opened: list[EventStream] = []
    try:
        opened += [stream("alice@example.com"), stream("alice@example.com")]
        assert [s.status for s in opened] == [200, 200]
        extra = stream("alice@example.com")
        opened.append(extra)
        assert extra.status == 429  # alice's share is taken…
        for user in ("bob@example.com", "carol@example.com"):
            opened.append(stream(user))
            assert opened[-1].status == 200  # …not the proxy's
        # around the proxy: no person, who sees nothing but liveness (not a share's 429)
        opened.append(EventStream(service.host, service.port, source_address=("127.0.0.4", 0)))
        assert opened[-1].status == 403
    finally:
        for s in opened:
            s.close()


def test_requests_in_progress_are_bounded_per_client(
    remote: BareRepo, clone: Clone, opsmap: Start, tmp_path: Path
) -> None:
    """Webhooks whose body never comes are requests in progress (for the body timeout):
    their client gets 429 for one more, another client is served, the probes too."""
    sha = clone.commit("flappers", author=ALICE, files=flapping_repo(tmp_path / "flags", 1))
    clone.push()
    service = opsmap(
        remote.url,
        poll_interval=3600,
        secret="s3cret",
        extra_args=["--max-requests-per-client", "2"],
    )
    service.wait_applied(sha)
    host, port = service.host, service.port
    held = []
    try:
        for _ in range(2):
            sock = socket.create_connection((host, port), timeout=HTTP_TIMEOUT_S)
            sock.sendall(b"POST /hooks/git HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
            held.append(sock)

        def refused() -> bool:
            code, headers, body = answer(host, port, "/api/v1/status")
            return code == 429 and "Retry-After" in headers and b"too many requests" in body

        wait_for(refused, what="a third request from the same client refused")
        for path in ("/healthz", "/readyz"):
            assert answer(host, port, path)[0] == 200  # probes are nobody's share
        other = http.client.HTTPConnection(
            host, port, timeout=HTTP_TIMEOUT_S, source_address=(OTHER_CLIENT, 0)
        )
        try:
            other.request("GET", "/api/v1/status")
            assert other.getresponse().status == 200
        finally:
            other.close()
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: answer(host, port, "/api/v1/status")[0] == 200, what="its share back")


def test_256_streams_from_one_client_leave_the_probes_and_the_others_served(
    remote: BareRepo, clone: Clone, opsmap: Start, tmp_path: Path
) -> None:
    """The attack as it was reported, with the defaults: 256 streams from one address
    that never reads used to hold every connection, and the probes answered 503."""
    sha = clone.commit("flappers", author=ALICE, files=flapping_repo(tmp_path / "flags", 1))
    clone.push()
    service = opsmap(remote.url, poll_interval=3600)
    service.wait_applied(sha)
    host, port = service.host, service.port
    wait_for(lambda: answer(host, port, "/readyz")[0] == 200, what="/readyz 200")
    flood = []
    try:
        for _ in range(256):
            sock = socket.create_connection((host, port), timeout=HTTP_TIMEOUT_S)
            sock.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
            flood.append(sock)
        codes = [status_code(sock) for sock in flood]  # read no further
        assert codes.count(b"200") == 8  # the default share
        assert codes.count(b"429") == 248
        for path in ("/healthz", "/readyz", "/metrics"):
            assert answer(host, port, path)[0] == 200, path
        other = EventStream(host, port, source_address=(OTHER_CLIENT, 0))
        try:
            assert other.status == 200
        finally:
            other.close()
    finally:
        for sock in flood:
            sock.close()
