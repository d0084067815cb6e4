"""/healthz and the status under load: a deep valid chain, and an event loop that is blocked.

- a real ``opsmap run`` on a 5,000-deep dependency chain (whose first component fails, so
  every other one is impacted): /healthz answers 200 and the status document grows
  linearly, each component naming at most a few root causes, not the chain below it;
- ``run_service`` in this process, its loop's thread deliberately put to sleep: the
  endpoint is served on that loop, so a probe sent meanwhile is answered once the loop is
  free again, and then says unhealthy with the reason, from the heartbeat (how long the
  loop was blocked), instead of a healthy 200; it recovers when the loop does.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from e2e_support import (
    HTTP_TIMEOUT_S,
    WAIT_S,
    Opsmap,
    command_check,
    component,
    find_component,
    repo_files,
    wait_for,
)
from gitrepos import ALICE, BareRepo, Clone

from reconciler.loop.bridge import STALL_S, STALL_SHOWN_S
from reconciler.loop.reconciler import Reconciler
from reconciler.server.http import HttpEndpoint
from reconciler.server.service import run_service

DEPTH = 5_000
MAX_BYTES_PER_COMPONENT = 2_000
"""What one component may add to the status (naively: every id of the chain below it)."""


def chain(depth: int) -> dict[str, str | bytes | None]:
    failing = command_check("probe", "exit 2", interval=3600)
    components = [component("c0", [failing])]
    components += [component(f"c{i}", [], dependencies=[f"c{i - 1}"]) for i in range(1, depth)]
    return repo_files(components)


def test_a_deep_chain_keeps_healthz_up_and_the_status_linear(
    remote: BareRepo, clone: Clone, opsmap: Callable[..., Opsmap]
) -> None:
    sha = clone.commit("a deep chain", author=ALICE, files=chain(DEPTH))
    clone.push()
    service = opsmap(remote.url, poll_interval=3600, timeout=120)
    service.wait_applied(sha, timeout=120)
    service.wait_check("c0", "probe", "CRITICAL")
    assert service.healthz() == 200

    code, body = service.request("GET", "/api/v1/status")
    assert code == 200
    assert len(body) < MAX_BYTES_PER_COMPONENT * DEPTH
    status = json.loads(body)
    assert find_component(status, "c0")["impacted_by"] == []
    assert find_component(status, "c1")["impacted_by"] == ["c0"]
    last = find_component(status, f"c{DEPTH - 1}")
    assert last["impacted_by"][0] == f"c{DEPTH - 2}"  # its direct dependency first
    assert len(last["impacted_by"]) == 10
    assert last["impacted_by_more"] is True
    assert service.healthz() == 200
    assert service.proc.poll() is None, service.tail()


def get(address: tuple[str, int], path: str) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection(*address, timeout=HTTP_TIMEOUT_S)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_a_blocked_loop_is_reported_with_a_reason_not_a_hang(
    remote: BareRepo, clone: Clone, tmp_path: Path
) -> None:
    clone.commit("one map", author=ALICE, files=chain(3))
    clone.push()
    started = threading.Event()
    running: dict[str, Any] = {}

    def on_started(reconciler: Reconciler, http: HttpEndpoint) -> None:
        running.update(reconciler=reconciler, address=http.address)
        running["loop"] = asyncio.get_running_loop()
        started.set()

    async def serve() -> None:
        running["stop"] = stop = asyncio.Event()
        await run_service(
            repo=remote.url,
            branch="main",
            listen=("127.0.0.1", 0),
            state_dir=tmp_path / "state",
            poll_interval_s=3600,
            webhook_secret=None,
            stop=stop,
            on_started=on_started,
        )

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="opsmap-under-test")
    thread.start()
    try:
        assert started.wait(WAIT_S), "run_service did not start"
        address, loop = running["address"], running["loop"]
        head = remote.head()
        assert wait_for(
            lambda: get(address, "/api/v1/status")[1].get("last_applied_revision") == head,
            what="the revision applied",
        )
        assert get(address, "/healthz")[0] == 200

        blocked = threading.Event()

        def block() -> None:  # runs on the loop's thread, which it holds
            blocked.set()
            time.sleep(STALL_S + 3)

        loop.call_soon_threadsafe(block)
        assert blocked.wait(WAIT_S)
        # sent while the loop sleeps: answered when it wakes, saying what happened
        code, health = get(address, "/healthz")
        assert code == 503
        assert health["status"] == "unhealthy"
        assert health["reason"].startswith("event loop ")
        assert health["reason"].endswith(" s ago") or health["reason"].endswith(" s")
        assert "blocked for " in health["reason"] or "has not ticked for " in health["reason"]

        code, status = get(address, "/api/v1/status")
        assert code == 200
        assert status["last_applied_revision"] == head
        assert wait_for(
            lambda: get(address, "/healthz")[0] == 200,
            what="healthy again",
            timeout=STALL_SHOWN_S + WAIT_S,
        )
    finally:
        if "loop" in running:
            running["loop"].call_soon_threadsafe(running["stop"].set)
        thread.join(WAIT_S)
    assert not thread.is_alive()
