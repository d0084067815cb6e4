"""Who sees what behind a trusted proxy, from a real ``opsmap run`` over real sockets.

``--trusted-user-header X-Forwarded-Email --trusted-proxy 127.0.0.1``: the test connects
from 127.0.0.1 as the proxy would, and from 127.0.0.2 (a loopback address of its own) as
someone going around it. Alice may view the ``public`` map only, Bob both: the status and
the event stream show each what their policies let them view; the header from any other
address is ignored, and a request with no trusted identity is refused (403). The truth
table of every viewer and endpoint is :mod:`test_e2e_viewer_truth`.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from e2e_support import HTTP_TIMEOUT_S, Opsmap, component, file_check, inventory, map_text
from gitrepos import ALICE, BareRepo, Clone
from sse_support import EventStream

Start = Callable[..., Opsmap]
PROXY = "127.0.0.1"
AROUND = "127.0.0.2"
HEADER = "X-Forwarded-Email"
POLICY = {
    "description": "who may view which map",
    "permissions": [
        {"user": "alice@example.com", "role": "viewer", "maps": ["public"]},
        {"user": "bob@example.com", "role": "viewer"},
    ],
}


def maps_seen(service: Opsmap, *, source: str, user: str | None) -> list[str] | int:
    """The maps the status shows, or the HTTP status when it is refused."""
    conn = http.client.HTTPConnection(
        service.host, service.port, timeout=HTTP_TIMEOUT_S, source_address=(source, 0)
    )
    try:
        conn.request("GET", "/api/v1/status", headers={HEADER: user} if user else {})
        response = conn.getresponse()
        if response.status != 200:
            return response.status
        status: dict[str, Any] = json.loads(response.read())
    finally:
        conn.close()
    return [m["name"] for m in status["maps"]]


def test_each_viewer_sees_the_maps_they_may_view(
    remote: BareRepo, clone: Clone, opsmap: Start, tmp_path: Path
) -> None:
    flags = {name: tmp_path / f"{name}-up" for name in ("public", "secret")}
    for flag in flags.values():
        flag.touch()
    files: dict[str, str | bytes | None] = {
        "inventory/local.yaml": inventory(),
        "policies/view.yaml": yaml.safe_dump(POLICY, sort_keys=False),
    }
    for name, flag in flags.items():
        files[f"maps/{name}.yaml"] = map_text(
            [component("app", [file_check("up", flag)])], name=name
        )
    sha = clone.commit("two maps", author=ALICE, files=files)
    clone.push()
    service = opsmap(
        remote.url,
        extra_args=["--trusted-user-header", HEADER, "--trusted-proxy", PROXY],
        headers={HEADER: "bob@example.com"},
    )
    service.wait_applied(sha)
    assert "serve it apart with --metrics-listen" in service.stderr()  # /metrics is everyone's

    assert maps_seen(service, source=PROXY, user="alice@example.com") == ["public"]
    assert maps_seen(service, source=PROXY, user="Bob@Example.com") == ["public", "secret"]
    assert maps_seen(service, source=AROUND, user="bob@example.com") == 403  # not the proxy
    assert maps_seen(service, source=PROXY, user=None) == 403
    assert maps_seen(service, source=PROXY, user="group:everyone") == []  # nobody

    as_alice = EventStream(
        service.host, service.port, headers={HEADER: "alice@example.com"}, source_address=(PROXY, 0)
    )
    as_bob = EventStream(
        service.host, service.port, headers={HEADER: "bob@example.com"}, source_address=(PROXY, 0)
    )
    around = EventStream(
        service.host,
        service.port,
        headers={HEADER: "bob@example.com"},
        source_address=(AROUND, 0),
    )
    try:

        def failing(name: str) -> Callable[[dict[str, Any]], bool]:
            return lambda e: (
                e.get("event") == "check"
                and e["data"]["map"] == name
                and e["data"]["hard_state"] == "CRITICAL"
            )

        flags["secret"].unlink()
        secret = as_bob.until(failing("secret"), what="the secret map's check failing")
        flags["public"].unlink()
        public = as_alice.until(failing("public"), what="the public map's check failing")
        # alice's stream, in order, is past the secret map's event (it came first): it was
        # not for her (her ids are her stream's own: not comparable with bob's)
        assert secret["data"]["map"] == "secret"
        assert public["data"]["map"] == "public"
        assert all(e.get("data", {}).get("map") != "secret" for e in as_alice.seen)
        as_bob.until(failing("public"), what="bob seeing the public map too")

        sha2 = clone.commit("touch", author=ALICE, files={"maps/README": "two maps\n"})
        clone.push()
        revision = as_alice.until(lambda e: e.get("event") == "revision", what="a revision")
        assert revision["data"]["sha"] == sha2  # no map in it: every person may see it
        assert around.status == 403  # no person: not even that
    finally:
        for stream in (as_alice, as_bob, around):
            stream.close()
