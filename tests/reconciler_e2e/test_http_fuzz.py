"""Every endpoint's parameters and headers, fuzzed over all of Unicode and raw bytes.

Against a real in-process server (``run_service`` in a thread, on a real git repo, with a
trusted identity header and a webhook secret, so that every path of the handlers is
reachable), hypothesis sends requests over a real socket: any path segment (a map, a
component, a static file), any query, any value of the headers the handlers read
(``Last-Event-ID``, ``Accept``, ``Accept-Encoding``, ``If-None-Match``, the identity
header, the webhook's signature headers) and any body to the webhook. Each request gets
an answer within the client's timeout (a hang fails, no duration is asserted), never a
``5xx`` (but a probe's ``503``, which says why), and nothing in the log is a traceback.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from urllib.parse import quote_from_bytes

import pytest
import yaml
from e2e_support import HTTP_TIMEOUT_S, component, file_check, inventory, map_text, wait_for
from gitrepos import ALICE, BareRepo, Clone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sse_support import ServiceThread, service_kwargs

from reconciler.server.connections import Limits
from reconciler.server.identity import parse_proxies

HEADER = "X-Forwarded-Email"
POLICY = {
    "description": "alice views the map",
    "permissions": [{"user": "alice@example.com", "role": "viewer", "maps": ["demo"]}],
}
FUZZED_HEADERS = (
    "Last-Event-ID",
    "Accept",
    "Accept-Encoding",
    "If-None-Match",
    HEADER,
    "X-Hub-Signature-256",
    "X-Gitlab-Token",
    "X-Gitea-Signature",
    "X-GitHub-Event",
    "Content-Type",
    "Connection",
    "Cookie",
)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceThread]:
    tmp = tmp_path_factory.mktemp("fuzz")
    remote = BareRepo.create(tmp / "remote.git")
    clone = Clone.create(remote, tmp / "work")
    flag = tmp / "up"
    flag.touch()
    files: dict[str, str | bytes | None] = {
        "inventory/local.yaml": inventory(),
        "policies/view.yaml": yaml.safe_dump(POLICY, sort_keys=False),
        "maps/demo.yaml": map_text([component("app", [file_check("up", flag)])], name="demo"),
    }
    clone.commit("a map", author=ALICE, files=files)
    clone.push()
    running = ServiceThread(
        **service_kwargs(
            remote.url,
            tmp / "state",
            webhook_secret=b"fuzz-secret",
            trusted_user_header=HEADER,
            trusted_proxies=parse_proxies("127.0.0.1"),
            limits=Limits(requests_per_client=1000, streams_per_client=1000),
        )
    ).start()
    try:
        wait_for(
            lambda: status_of(running, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n") == 200,
            what="ready",
        )
        yield running
    finally:
        running.stop()


def status_of(service: ServiceThread, request: bytes) -> int:
    """Send ``request``; the status code of the answer (read no further)."""
    with socket.create_connection(service.address, timeout=HTTP_TIMEOUT_S) as sock:
        sock.sendall(request)
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, f"closed without an answer to {request[:300]!r}"
            head += chunk
    line = head.split(b"\r\n", 1)[0]
    assert line.startswith(b"HTTP/1."), line
    return int(line.split()[1])


numbers = st.text(
    st.characters(categories=("No",)).filter(str.isdigit) | st.characters(categories=("Nd",)),
    min_size=1,
    max_size=24,
)
"""Any Unicode digits: decimal (``١٢``, which ``int`` reads) or not (``²``, ``①``, which
``str.isdigit`` takes and ``int`` refuses)."""
any_bytes = st.one_of(
    st.binary(max_size=300), st.text(max_size=100).map(str.encode), numbers.map(str.encode)
)
"""Any bytes, or any Unicode as UTF-8, digits often."""


def header_value(raw: bytes) -> bytes:
    """A header value as a client can send it: anything but the line's end."""
    return raw.replace(b"\r", b"").replace(b"\n", b"")


segment = st.one_of(
    any_bytes.map(lambda b: quote_from_bytes(b, safe="").encode()),  # percent-encoded
    any_bytes.map(lambda b: b.translate(None, b" \r\n?#/")),  # raw bytes in the path
)
ENDPOINTS: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "page": (b"/", ("If-None-Match", "Accept", "Accept-Encoding")),
    "static": (b"/static/{}", ("If-None-Match", "Accept-Encoding")),
    "healthz": (b"/healthz", ("Accept",)),
    "readyz": (b"/readyz", ("Accept",)),
    "metrics": (b"/metrics", ("Accept", "Accept-Encoding")),
    "status": (b"/api/v1/status", (HEADER, "Accept-Encoding")),
    "events": (b"/api/v1/events", ("Last-Event-ID", HEADER)),
    "maps": (b"/api/v1/maps", (HEADER, "Accept-Encoding")),
    "map": (b"/api/v1/maps/{}", (HEADER,)),
    "component": (b"/api/v1/maps/{}/components/{}", (HEADER,)),
    "requests": (b"/api/v1/requests", (HEADER,)),
    "hook": (
        b"/hooks/git",
        ("X-Hub-Signature-256", "X-Gitlab-Token", "X-Gitea-Signature", "X-GitHub-Event"),
    ),
}


@st.composite
def requests(draw: st.DrawFn, endpoint: str) -> bytes:
    """A request to ``endpoint``: its path's segments, a query, the headers it reads
    (each present or not) and others, fuzzed; a body to the webhook."""
    template, own = ENDPOINTS[endpoint]
    path = template
    while b"{}" in path:
        path = path.replace(b"{}", draw(segment), 1)
    if draw(st.booleans()):
        key = draw(st.sampled_from([b"last_event_id", b"map"]) | segment)
        path += b"?" + key + b"=" + draw(segment)
    person = st.just(b"alice@example.com")  # who sees the map: parameters are then read
    headers = [
        (name, (person | any_bytes) if name == HEADER else (numbers.map(str.encode) | any_bytes))
        for name in own
        if draw(st.booleans())
    ]
    others = draw(st.lists(st.sampled_from(FUZZED_HEADERS), unique=True, max_size=2))
    headers += [(name, any_bytes) for name in others if name not in own]
    post = endpoint == "hook"
    method = b"POST" if post else draw(st.sampled_from([b"GET", b"HEAD"]))
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: fuzz", b"Connection: close"]
    lines += [name.encode() + b": " + header_value(draw(values)) for name, values in headers]
    body = draw(any_bytes) if post else b""
    if post:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_parameter_or_header_brings_a_5xx_or_a_traceback(
    service: ServiceThread, caplog: pytest.LogCaptureFixture, endpoint: str, data: st.DataObject
) -> None:
    caplog.set_level(logging.WARNING)
    request = data.draw(requests(endpoint), label="request")
    code = status_of(service, request)
    probe = endpoint in ("healthz", "readyz")
    assert code < 500 or (probe and code == 503), f"{code} for {request[:400]!r}"
    tracebacks = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not tracebacks, f"{tracebacks[0].getMessage()} after {request[:400]!r}"


@pytest.mark.parametrize(
    "value",
    ["²", "١٢٣", "１２", "-1", "1e3", " ", "99999999999999999999999", "0x10", "\u00a0 7"],
)
def test_a_last_event_id_that_is_no_id_is_400(service: ServiceThread, value: str) -> None:
    person = f"{HEADER}: alice@example.com\r\n".encode()  # else 403 before the header is read
    for request in (
        b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n"
        + person
        + b"Last-Event-ID: "
        + value.encode()
        + b"\r\n\r\n",
        b"GET /api/v1/events?last_event_id="
        + quote_from_bytes(value.encode(), safe="").encode()
        + b" HTTP/1.1\r\nHost: x\r\n"
        + person
        + b"\r\n",
    ):
        code = status_of(service, request)
        assert code == (200 if not value.strip() else 400), request
