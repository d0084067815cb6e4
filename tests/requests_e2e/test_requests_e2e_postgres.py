"""Requests through a real ``opsmap run --state-url-file`` whose state is in PostgreSQL (the
session's throwaway cluster, over TCP with a password): a merged request runs once, its
journal row and audit records live in the database and reach the remote as git notes; a
kill -9 mid-action is reported ``unknown`` by the next process, never re-run; and the
database stopped while the reconciler runs makes a request wait, not fail, until it is
back."""

from __future__ import annotations

import pytest
from e2e_support import counter, wait_for
from pgcluster import PASSWORD, Cluster
from requests_e2e_support import SAM, TINA, WAIT_S, World, WorldFactory, appending, batch_files

from reconciler.audit import AuditRecord, verify_chain

pytestmark = [pytest.mark.sshd, pytest.mark.slow]


def _world(make_world: WorldFactory, pg_cluster: Cluster, name: str) -> World:
    world = make_world(name)
    world.state_url = pg_cluster.url(pg_cluster.database(name), tcp=True)
    return world


def test_a_merged_request_runs_once_with_its_journal_and_audit_in_postgresql(
    make_world: WorldFactory, pg_cluster: Cluster
) -> None:
    world = _world(make_world, pg_cluster, "pgrun")
    site = world.site
    world.clone.commit("batch map", author=SAM, files=batch_files(world, [appending(site, "bump")]))
    world.start()
    world.wait_applied(world.push())

    path, merge = world.request_pr("bump", "batch", "bump", author=SAM, merger=TINA)
    world.push()
    entry = world.wait_request(path)
    assert (entry["state"], entry["commit"]) == ("succeeded", merge)
    assert (entry["requester"], entry["approver"]) == (SAM.email, TINA.email)
    assert site.lines("bump.log") == ["bump"]
    assert [r["action"] for r in world.records(path)] == [
        "request.authorized",
        "action.started",
        "action.succeeded",
    ]
    notes = world.wait_notes(merge, ["request.authorized", "action.started", "action.succeeded"])
    assert {r["id"] for r in notes} <= {r["id"] for r in world.outbox()}
    assert not (world.state_dir / "opsmap.sqlite3").exists()
    assert PASSWORD not in world.running.stderr()
    assert world.stop() == 0

    # the chain in the database verifies, and a restart runs nothing again
    world.start()
    world.wait_applied(world.push())
    assert world.running.status()["requests"][0]["path"] == path
    assert site.lines("bump.log") == ["bump"]
    assert verify_chain([AuditRecord.from_json(r) for r in world.outbox()]) is None


def test_kill_9_mid_action_then_a_database_outage_loses_no_decision(
    make_world: WorldFactory, pg_cluster: Cluster
) -> None:
    world = _world(make_world, pg_cluster, "pgcrash")
    site = world.site
    long_action = {
        "name": "long",
        "command": f"echo run >>{site.dir}/long.log; sleep 30",
        "timeout_secs": 120,
    }
    world.clone.commit(
        "batch map",
        author=SAM,
        files=batch_files(world, [long_action, appending(site, "mark")]),
    )
    world.start()
    world.wait_applied(world.push())
    path, merge = world.request_pr("long", "batch", "long", author=SAM, merger=TINA)
    world.push()
    world.wait_request(path, ("running",))
    wait_for(lambda: site.lines("long.log") == ["run"], what=f"the long action\n{world.tail()}")
    world.crash()

    world.start()
    entry = world.wait_request(path, ("unknown",))
    assert entry["commit"] == merge
    assert counter(world.metrics(), "opsmap_requests_total", result="unknown") == 1

    # the database goes away: a request merged meanwhile waits (it does not start), the
    # reconciler keeps serving and says why; when the database is back, it runs, once
    pg_cluster.stop()
    try:
        later, _ = world.request_pr("mark", "batch", "mark", author=SAM, merger=TINA)
        world.push()
        waiting = wait_for(
            lambda: world.running.status()["requests_pending"] or None,
            what=f"the request to wait for the state\n{world.tail()}",
            timeout=WAIT_S,
        )
        # it waits before it starts (a journal read or write fails before its row is written)
        assert waiting[0]["step"] in ("start", "recovery"), waiting
        assert waiting[0]["request"] in (None, later), waiting
        assert "cannot write journal" in waiting[0]["reason"], waiting
        assert site.lines("mark.log") == []
        code, body = world.running.request("GET", "/healthz")
        assert code == 503, body
        assert b"state writes failing" in body
    finally:
        pg_cluster.start()
    assert world.wait_request(later, timeout=WAIT_S * 2)["state"] == "succeeded"
    assert site.lines("mark.log") == ["mark"]
    assert site.lines("long.log") == ["run"]
    assert [r["action"] for r in world.records(path)] == [
        "request.authorized",
        "action.started",
        "action.unknown",
    ]
    assert [r["action"] for r in world.records(later)] == [
        "request.authorized",
        "action.started",
        "action.succeeded",
    ]
    seqs = [r["seq"] for r in world.outbox()]
    assert seqs == list(range(1, len(seqs) + 1))
