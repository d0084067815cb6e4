"""``GET /api/v1/events`` from a real ``opsmap run``: events after a real state change.

A ``tcp`` check watches a port the test opens and closes: closing it brings a ``check``
event (CRITICAL, hard) and a ``component`` event (ok → error) on the stream; a new commit
brings a ``revision`` event. A client that reconnects with the last id it saw gets what
happened meanwhile (ids above it, in order); one with an id the server does not keep gets
a ``reset`` event first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from e2e_support import MAP, Listener, Opsmap, component, repo_files, tcp_check
from gitrepos import ALICE, BareRepo, Clone
from sse_support import EventStream

Start = Callable[..., Opsmap]


def port_map(port: int, *, extra: str | None = None) -> dict[str, str | bytes | None]:
    components = [component("redis", [tcp_check("tcp_port", port, interval=1)])]
    if extra is not None:
        components.append(component(extra, [tcp_check("tcp_port", port, interval=3600)]))
    return repo_files(components)


def is_check(state: str) -> Callable[[dict[str, Any]], bool]:
    def match(event: dict[str, Any]) -> bool:
        data = event.get("data", {})
        return bool(
            event.get("event") == "check"
            and data.get("component") == "redis"
            and data.get("check") == "tcp_port"
            and data.get("hard_state") == state
        )

    return match


def test_a_port_closing_and_opening_is_on_the_stream_and_resumed(
    remote: BareRepo, clone: Clone, opsmap: Start
) -> None:
    listener = Listener().open()
    try:
        sha = clone.commit("redis", author=ALICE, files=port_map(listener.port))
        clone.push()
        service = opsmap(remote.url, poll_interval=1)
        service.wait_applied(sha)
        service.wait_check("redis", "tcp_port", "OK")

        stream = EventStream(service.host, service.port)
        try:
            assert stream.status == 200
            assert stream.content_type.startswith("text/event-stream")
            listener.close()
            failed = stream.until(is_check("CRITICAL"), what="the check CRITICAL")
            data = failed["data"]
            assert data["map"] == MAP
            assert data["state"] == "CRITICAL"
            assert data["state_type"] == "hard"
            assert data["host"] == "e2e-local"
            assert set(data) >= {
                "attempt",
                "message",
                "value",
                "duration_s",
                "last_run",
                "flapping",
            }
            status = stream.until(
                lambda e: e.get("event") == "component" and e["data"]["component"] == "redis",
                what="redis's status change",
            )
            assert status["data"] == {
                "map": MAP,
                "component": "redis",
                "status": "error",
                "old": "ok",
            }
            assert status["id"] > failed["id"]
            last_seen = status["id"]
        finally:
            stream.close()

        listener.open()  # the same port: the check passes again while nobody listens
        service.wait_check("redis", "tcp_port", "OK")
        resumed = EventStream(service.host, service.port, headers={"Last-Event-ID": str(last_seen)})
        try:
            recovered = resumed.until(is_check("OK"), what="the missed recovery")
            replayed = [e for e in resumed.seen if "id" in e]
            assert all(e["id"] > last_seen for e in replayed)
            assert [e["id"] for e in replayed] == sorted(e["id"] for e in replayed)
            assert recovered["data"]["state"] == "OK"
            ok = resumed.until(
                lambda e: e.get("event") == "component" and e["data"]["status"] == "ok",
                what="redis ok again",
            )
            assert ok["data"]["old"] == "error"

            sha2 = clone.commit(
                "another component", author=ALICE, files=port_map(listener.port, extra="cache")
            )
            clone.push()
            applied = resumed.until(
                lambda e: e.get("event") == "revision", what="the new revision applied"
            )
            assert applied["data"]["kind"] == "applied"
            assert applied["data"]["sha"] == sha2
            assert applied["data"]["error_count"] == 0
        finally:
            resumed.close()

        stale = EventStream(service.host, service.port, headers={"Last-Event-ID": "5"})
        try:
            first = stale.until(lambda e: "event" in e, what="the first event")
            assert first["event"] == "reset"
            assert "fetch" in first["data"]["reason"]
        finally:
            stale.close()
    finally:
        listener.close()


def test_a_rejected_revision_is_on_the_stream(
    remote: BareRepo, clone: Clone, opsmap: Start
) -> None:
    listener = Listener().open()
    try:
        clone.commit("redis", author=ALICE, files=port_map(listener.port))
        clone.push()
        service = opsmap(remote.url, poll_interval=1)
        service.wait_check("redis", "tcp_port", "OK")
        stream = EventStream(service.host, service.port)
        try:
            bad = clone.commit("broken", author=ALICE, files={f"maps/{MAP}.yaml": "name: [\n"})
            clone.push()
            rejected = stream.until(lambda e: e.get("event") == "revision", what="the rejection")
            assert rejected["data"]["kind"] == "rejected"
            assert rejected["data"]["sha"] == bad
            assert rejected["data"]["error_count"] >= 1
        finally:
            stream.close()
    finally:
        listener.close()
