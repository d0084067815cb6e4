"""What each viewer sees, byte by byte: a truth table over a real ``opsmap run``.

Three maps behind ``--trusted-user-header X-Forwarded-Email --trusted-proxy 127.0.0.1``:
``pubmap-v1`` (component ``pubweb-v1`` on host ``pubhost-v1``), ``mixmap-m1``
(``frontcomp-m1`` on ``fronthost-m1``, depending on ``backcomp-q7`` on ``backhost-q7``)
and ``secretmap-q7`` (``vaultcomp-q7`` on ``vaulthost-q7``, in ``maps/secretfile-q7.yaml``,
its admins the group ``secretgroup-q7``). Every check fails, so every component changes
status and the front is impacted by the back; three requests run (one on each map, the
mixed map's on all its components, ``*``); then a revision is rejected for a key
``badkey-q7`` in the secret map's file.

Six viewers (no identity, the header from around the proxy, a person with no rights, the
viewer of ``pubmap-v1``, the viewer of ``frontcomp-m1`` alone, an admin of everything)
read every endpoint — ``/api/v1/status``, ``/api/v1/maps``, each map, each component, the
requests, the event stream, the page and its script, the probes — and the test asserts
that no token they may not see is in any byte of any answer (status line, headers, body),
that the tokens they may see are, and that a hidden map or component is answered exactly
as one that does not exist.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_support import HTTP_TIMEOUT_S, Opsmap, command_check, wait_for
from gitrepos import ALICE, BOB, BareRepo, Clone
from sse_support import EventStream

pytestmark = pytest.mark.slow

Start = Callable[..., Opsmap]
HEADER = "X-Forwarded-Email"
PROXY = "127.0.0.1"
AROUND = "127.0.0.2"
"""An address that is not the proxy's: its header is ignored."""

PUBLIC = {"pubmap-v1", "pubweb-v1", "pubhost-v1", "pubmsg-v1", "pubreq-v1"}
FRONT = {"mixmap-m1", "frontcomp-m1", "fronthost-m1", "frontmsg-m1"}
BACK = {"backcomp-q7", "backhost-q7", "backmsg-q7", "mixreq-m1", "mixreason-m1"}
"""The mixed map's back, and its whole-map request (whose hosts include the back's)."""
SECRET = {
    "secretmap-q7",
    "vaultcomp-q7",
    "vaulthost-q7",
    "vaultmsg-q7",
    "secretreq-q7",
    "secretreason-q7",
    "secretgroup-q7",
}
REJECTED = {"secretfile-q7", "badkey-q7"}
"""The rejected revision's errors: counted, never shown to a viewer."""
EVERY = PUBLIC | FRONT | BACK | SECRET | REJECTED
REASONS = {"pubreason-v1", "mixreason-m1", "secretreason-q7"}
"""A request's reason is in its file and audit records, not in these documents: checked
absent where hidden, never required present."""


@dataclass(frozen=True)
class Viewer:
    name: str
    user: str | None
    source: str
    sees: frozenset[str]
    """Tokens that must appear somewhere in what this viewer is answered."""

    @property
    def identified(self) -> bool:
        return self.user is not None and self.source == PROXY

    @property
    def headers(self) -> dict[str, str]:
        return {HEADER: self.user} if self.user is not None else {}


VIEWERS = [
    Viewer("no identity", None, PROXY, frozenset()),
    Viewer("around the proxy", "root@example.com", AROUND, frozenset()),
    Viewer("no rights", "nobody@example.com", PROXY, frozenset()),
    Viewer("public viewer", "pat@example.com", PROXY, frozenset(PUBLIC - REASONS)),
    Viewer("one component", "cora@example.com", PROXY, frozenset(FRONT)),
    Viewer("admin", "root@example.com", PROXY, frozenset(EVERY - REJECTED - REASONS)),
]


def host(name: str) -> dict[str, Any]:
    return {"name": name, "transport": "local", "labels": {"role": name}}


def comp(id_: str, on: str, message: str, flags: Path, **more: Any) -> dict[str, Any]:
    flag = flags / f"{id_}-up"
    flag.touch()
    check = command_check("alive", f"echo {message}; test -e '{flag}' || exit 2")
    return {
        "id": id_,
        "hosts": {"labels": {"role": on}},
        "checks": [check],
        "actions": [
            {"name": "restart", "command": "true"},
            {"name": "start", "command": "true"},
        ],
        **more,
    }


def repo_files(flags: Path) -> dict[str, str | bytes | None]:
    public = {
        "name": "pubmap-v1",
        "components": [comp("pubweb-v1", "pubhost-v1", "pubmsg-v1", flags)],
    }
    mixed = {
        "name": "mixmap-m1",
        "components": [
            comp("frontcomp-m1", "fronthost-m1", "frontmsg-m1", flags,
                 dependencies=["backcomp-q7"]),
            comp("backcomp-q7", "backhost-q7", "backmsg-q7", flags),
        ],
    }  # fmt: skip
    secret = {
        "name": "secretmap-q7",
        "components": [comp("vaultcomp-q7", "vaulthost-q7", "vaultmsg-q7", flags)],
    }
    policy = {
        "groups": {"secretgroup-q7": ["alice@example.com", "bob@example.com"]},
        "permissions": [
            {"user": "root@example.com", "role": "admin"},
            {"group": "secretgroup-q7", "role": "admin", "maps": ["secretmap-q7"]},
            {"user": "alice@example.com", "role": "operator", "maps": ["pubmap-v1", "mixmap-m1"]},
            {"user": "pat@example.com", "role": "viewer", "maps": ["pubmap-v1"]},
            {"user": "cora@example.com", "role": "viewer", "maps": ["mixmap-m1"],
             "overrides": {"components": {"backcomp-q7": {"deny": ["view"]}}}},
        ],
    }  # fmt: skip
    hosts = ["pubhost-v1", "fronthost-m1", "backhost-q7", "vaulthost-q7"]
    return {
        "inventory/local.yaml": yaml.safe_dump({"hosts": [host(h) for h in hosts]}),
        "maps/pubmap.yaml": yaml.safe_dump(public, sort_keys=False),
        "maps/mixmap.yaml": yaml.safe_dump(mixed, sort_keys=False),
        "maps/secretfile-q7.yaml": yaml.safe_dump(secret, sort_keys=False),
        "policies/view.yaml": yaml.safe_dump(policy, sort_keys=False),
    }


def request_file(map_name: str, component: str, action: str, reason: str) -> str:
    doc = {"map": map_name, "component": component, "action": action, "reason": reason}
    return yaml.safe_dump(doc, sort_keys=False)


REQUESTS = {
    "requests/pubreq-v1.yaml": request_file("pubmap-v1", "pubweb-v1", "restart", "pubreason-v1"),
    "requests/mixreq-m1.yaml": request_file("mixmap-m1", "*", "start", "mixreason-m1"),
    "requests/secretreq-q7.yaml": request_file(
        "secretmap-q7", "vaultcomp-q7", "restart", "secretreason-q7"
    ),
}
MAPS = ["pubmap-v1", "mixmap-m1", "secretmap-q7", "nosuchmap-z"]
COMPONENTS = [
    ("pubmap-v1", "pubweb-v1"),
    ("mixmap-m1", "frontcomp-m1"),
    ("mixmap-m1", "backcomp-q7"),
    ("mixmap-m1", "nosuchcomp-z"),
    ("secretmap-q7", "vaultcomp-q7"),
    ("nosuchmap-z", "nosuchcomp-z"),
]
PATHS = [
    "/api/v1/status",
    "/api/v1/maps",
    *(f"/api/v1/maps/{m}" for m in MAPS),
    *(f"/api/v1/maps/{m}/components/{c}" for m, c in COMPONENTS),
    "/api/v1/requests",
    "/",
    "/static/app.js",
    "/healthz",
    "/readyz",
]
DATA = [p for p in PATHS if p.startswith("/api/")]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def raw(self) -> bytes:
        head = "".join(f"{k}: {v}\n" for k, v in self.headers)
        return f"{self.status}\n{head}\n".encode() + self.body

    def same_as(self, other: Answer) -> bool:
        def kept(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
            return [(k, v) for k, v in headers if k.lower() != "date"]

        return (self.status, kept(self.headers), self.body) == (
            other.status,
            kept(other.headers),
            other.body,
        )


def get(service: Opsmap, path: str, viewer: Viewer) -> Answer:
    conn = http.client.HTTPConnection(
        service.host, service.port, timeout=HTTP_TIMEOUT_S, source_address=(viewer.source, 0)
    )
    try:
        conn.request("GET", path, headers=viewer.headers)
        response = conn.getresponse()
        return Answer(response.status, response.getheaders(), response.read())
    finally:
        conn.close()


def leaks(raw: bytes, viewer: Viewer) -> set[str]:
    text = raw.decode("utf-8", "replace").lower()
    return {t for t in EVERY - viewer.sees if t in text}


def test_every_viewer_on_every_endpoint_sees_only_what_it_may(
    remote: BareRepo, clone: Clone, opsmap: Start, tmp_path: Path
) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    files = repo_files(flags)
    sha = clone.commit("three maps", author=ALICE, files=files)
    clone.push()
    service = opsmap(
        remote.url,
        extra_args=["--trusted-user-header", HEADER, "--trusted-proxy", PROXY],
        headers={HEADER: "root@example.com"},
    )
    service.wait_applied(sha)

    streams = {
        v.name: EventStream(
            service.host, service.port, headers=v.headers, source_address=(v.source, 0)
        )
        for v in VIEWERS
    }
    try:
        for viewer in VIEWERS:
            assert streams[viewer.name].status == (200 if viewer.identified else 403), viewer

        for flag in flags.iterdir():  # every check fails: check and component events
            flag.unlink()
        wait_for(
            lambda: all(
                c["status"] == "error" for m in service.status()["maps"] for c in m["components"]
            ),
            what="every component in error",
        )
        for number, (path, text) in enumerate(REQUESTS.items()):
            clone.pull_request(f"pr-{number}", {path: text}, author=ALICE, merger=BOB)
        clone.push()
        wait_for(
            lambda: (
                sorted(
                    r["path"]
                    for r in service.status()["requests"]
                    if r["state"] in ("succeeded", "failed", "denied", "unknown")
                )
                == sorted(REQUESTS)
            ),
            what="the three requests finished",
        )
        assert {r["state"] for r in service.status()["requests"]} == {"succeeded"}
        secret = yaml.safe_load(str(files["maps/secretfile-q7.yaml"]))
        bad = yaml.safe_dump({**secret, "badkey-q7": 1})
        clone.commit("a bad key", author=ALICE, files={"maps/secretfile-q7.yaml": bad})
        rejected = clone.push()
        status = wait_for(
            lambda: (s := service.status())["last_attempted_revision"] == rejected and s,
            what="the bad revision rejected",
        )
        assert status["revision_rejected"]
        assert status["validation_error_count"] >= 1
        for viewer in VIEWERS:  # every event before the rejection has reached each person
            if viewer.identified:
                streams[viewer.name].until(
                    lambda e: e.get("event") == "revision" and e["data"].get("sha") == rejected,
                    what=f"the rejection in {viewer.name}'s stream",
                )

        for viewer in VIEWERS:
            answers = {path: get(service, path, viewer) for path in PATHS}
            seen = bytearray(streams[viewer.name].raw)
            for path, answer in answers.items():
                assert not leaks(answer.raw, viewer), (viewer.name, path, answer.raw[:2000])
                seen += answer.raw
            assert not leaks(bytes(streams[viewer.name].raw), viewer), viewer.name
            text = seen.decode("utf-8", "replace").lower()
            missing = {t for t in viewer.sees if t not in text}
            assert not missing, (viewer.name, missing)
            assert_statuses(viewer, answers)

        events = streams["public viewer"].seen
        kinds = {e.get("event") for e in events}
        assert {"check", "component", "request", "action", "revision"} <= kinds, kinds
        cora = status_of(service, VIEWERS[4])
        [front] = [c for m in cora["maps"] for c in m["components"]]
        assert front["dependencies"] == []
        assert front["impacted_by"] == []
        assert [h["name"] for h in cora["hosts"]] == ["fronthost-m1"]
        assert cora["validation_errors"] == []
        assert cora["validation_error_count"] >= 1
        assert "fetch_error" not in cora
        assert "audit_pending" not in cora
        nobody = status_of(service, VIEWERS[2])
        assert nobody["maps"] == []
        assert nobody["hosts"] == []
        assert nobody["requests"] == []
        assert nobody["request_count"] == 0
        assert nobody["last_applied_revision"] == status["last_applied_revision"]
    finally:
        for stream in streams.values():
            stream.close()


def status_of(service: Opsmap, viewer: Viewer) -> dict[str, Any]:
    answer = get(service, "/api/v1/status", viewer)
    assert answer.status == 200
    document: dict[str, Any] = json.loads(answer.body)
    return document


def assert_statuses(viewer: Viewer, answers: Mapping[str, Answer]) -> None:
    """Refused without an identity; else a hidden map or component is answered as one
    that does not exist, byte for byte."""
    for path in ("/", "/static/app.js", "/healthz", "/readyz"):
        assert answers[path].status == 200, (viewer.name, path)
    if not viewer.identified:
        refusals = [answers[p] for p in DATA]
        assert {a.status for a in refusals} == {403}, viewer.name
        assert all(a.same_as(refusals[0]) for a in refusals), viewer.name
        return
    assert answers["/api/v1/status"].status == 200
    missing_map = answers["/api/v1/maps/nosuchmap-z"]
    for name in MAPS:
        answer = answers[f"/api/v1/maps/{name}"]
        if name.lower() in viewer.sees:
            assert answer.status == 200, (viewer.name, name)
        else:
            assert answer.same_as(missing_map), (viewer.name, name)
    missing_component = answers["/api/v1/maps/nosuchmap-z/components/nosuchcomp-z"]
    for name, component in COMPONENTS:
        answer = answers[f"/api/v1/maps/{name}/components/{component}"]
        if component in viewer.sees:
            assert answer.status == 200, (viewer.name, component)
        else:
            assert answer.same_as(missing_component), (viewer.name, name, component)
