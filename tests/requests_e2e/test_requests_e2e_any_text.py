"""A NUL and bytes that are not UTF-8, from a host and from a PR, through a real
``opsmap run`` whose state is in PostgreSQL (the session's throwaway cluster, over TCP).

Before the store encoded text, a check whose output held a NUL made the periodic save
raise, and the reconciler exit 1 ten seconds later (and after every restart). Here a check
prints ``a NUL b 0xff c`` over SSH, and merged request files hold a NUL in a YAML key and
in a value: the reconciler keeps running, the check's row is saved and shown with its
bytes, the request with the bad key is denied with the reason, the one with the NUL in
its reason runs and is journaled as it was, a later request runs, the audit notes pass
``opsmap audit verify``, and a clean stop saves everything (exit 0).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from e2e_support import wait_for
from pgcluster import Cluster
from requests_e2e_support import (
    MAP,
    SAM,
    TINA,
    WAIT_S,
    World,
    WorldFactory,
    appending,
    batch_files,
    component,
    map_yaml,
    request_yaml,
)

from reconciler.audit import AuditRecord, verify_chain
from reconciler.store.text import from_stored

pytestmark = [pytest.mark.sshd, pytest.mark.slow]

PRINTED = re.compile("a\0b[\udcff\ufffd]c")
"""What the check prints (``printf 'a\\000b\\377c'``), as OpsMap reads it: the transport
(agentless) decodes a byte that is not UTF-8 as U+FFFD today, or as the lone surrogate
that ``surrogateescape`` makes; the store keeps either as it is."""


def _check_message(world: World) -> str | None:
    for map_ in world.running.status()["maps"]:
        for comp in map_["components"]:
            for check in comp["checks"]:
                if check["name"] == "nul" and check["last_run"] is not None:
                    return str(check["message"])
    return None


def _stored_message(world: World) -> str | None:
    rows = world.query("SELECT message FROM check_status WHERE check_name = 'nul'")
    return from_stored(rows[0][0]) if rows else None


def test_a_nul_from_a_host_and_from_a_pr_is_stored_and_the_service_goes_on(
    make_world: WorldFactory, pg_cluster: Cluster
) -> None:
    world = make_world("pgnul")
    world.state_url = pg_cluster.url(pg_cluster.database("pgnul"), tcp=True)
    site = world.site
    batch: dict[str, Any] = component("batch", [appending(site, "mark")])
    batch["checks"] = [
        {
            "name": "nul",
            "type": "command",
            "config": {"command": "printf 'a\\000b\\377c'; exit 1"},
            "interval_secs": 1,
            "timeout_secs": 10,
        }
    ]
    files = {**batch_files(world, [appending(site, "mark")]), f"maps/{MAP}.yaml": map_yaml([batch])}
    world.clone.commit("a check that prints a NUL", author=SAM, files=files)
    world.start()
    world.wait_applied(world.push())

    # the host's bytes: shown, and saved by the periodic save (which used to exit 1)
    shown = wait_for(lambda: _check_message(world), what=f"the check\n{world.tail()}")
    assert PRINTED.search(shown), repr(shown)
    stored = wait_for(lambda: _stored_message(world), what=f"the saved row\n{world.tail()}",
                      timeout=WAIT_S)  # fmt: skip
    assert PRINTED.search(stored), repr(stored)

    # a PR's NUL: in a key (denied, with the reason), in a value (stored as it was)
    bad_key, nul_reason = "requests/nul-key.yaml", "requests/nul-reason.yaml"
    world.pr("pr-nul", {
        bad_key: request_yaml("batch", "mark") + '"k\\0ey": "v\\0"\n',
        nul_reason: request_yaml("batch", "mark", reason="before\0after"),
    }, author=SAM, merger=TINA)  # fmt: skip
    world.push()
    denied = world.wait_request(bad_key)
    assert denied["state"] == "denied"
    assert "invalid request file" in denied["rule"]
    assert world.wait_request(nul_reason)["state"] == "succeeded"
    [authorized] = [r for r in world.records(nul_reason) if r["action"] == "request.authorized"]
    assert authorized["details"]["reason"] == "before\0after"

    # later requests still run, the check still runs and is saved, the service is up
    later, merge = world.request_pr("later", "batch", "mark", author=SAM, merger=TINA)
    world.push()
    assert world.wait_request(later)["state"] == "succeeded"
    assert site.lines("mark.log") == ["mark", "mark"]
    world.wait_notes(merge, ["request.authorized", "action.started", "action.succeeded"])
    assert world.running.proc.poll() is None
    verified = world.audit_cli("verify")
    assert verified.returncode == 0, verified.stderr
    assert "chain intact" in verified.stdout
    assert verify_chain([AuditRecord.from_json(r) for r in world.outbox()]) is None
    code, body = world.running.request("GET", "/healthz")
    assert code == 200, body
    assert world.stop() == 0
    assert PRINTED.search(_stored_message(world) or ""), _stored_message(world)
