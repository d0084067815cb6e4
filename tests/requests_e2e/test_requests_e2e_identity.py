"""Without ``require_signed_commits``, identities are claims, and every place says so.

A request authored by Erin and committed by Frank (a name anyone could have typed) runs as
Erin; each of its audit records carries ``verified: false`` with the author and the
committer, and ``opsmap plan`` (on the pull request, before the merge) and ``opsmap audit``
(on the notes pushed after it) print "unverified" next to her.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from requests_e2e_support import (
    BOB_EXTERNAL,
    ERIN,
    FRANK,
    MAP,
    SAM,
    WorldFactory,
    appending,
    batch_files,
    one,
    request_yaml,
)

pytestmark = [pytest.mark.sshd, pytest.mark.slow]


def test_unsigned_identities_are_labelled_claims(make_world: WorldFactory) -> None:
    world = make_world("claims")
    site, clone = world.site, world.clone
    developers_mark = {
        "group": "developers",
        "role": "viewer",
        "maps": [MAP],
        "overrides": {"actions": {"batch": {"mark": "allow"}}},
    }
    clone.commit(
        "map repo",
        author=SAM,
        files=batch_files(world, [appending(site, "mark")], bindings=[developers_mark]),
    )
    world.start()
    world.wait_applied(world.push())

    path = "requests/claimed.yaml"
    clone.switch("pr-claimed", create_from="main")
    clone.commit("ask", author=ERIN, committer=FRANK, files={path: request_yaml("batch", "mark")})
    plan = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", "--base", "main", "--head", "pr-claimed"],
        cwd=clone.path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    merge = clone.merge("pr-claimed", by=SAM)
    denied_path, denied_merge = world.request_pr(
        "bob-asks", "batch", "mark", author=BOB_EXTERNAL, merger=SAM
    )
    world.push()

    assert plan.returncode == 0, plan.stderr
    [requester_row] = [line for line in plan.stdout.splitlines() if line.startswith("| Requester")]
    assert f"`{ERIN.email}` (unverified" in requester_row
    assert world.wait_request(path)["state"] == "succeeded"
    assert world.wait_request(denied_path)["state"] == "denied"
    assert site.lines("mark.log") == ["mark"]
    shown = world.status_request(path)  # /api/v1/status says the names are claims
    assert (shown["requester"], shown["approver"]) == (ERIN.email, SAM.email)
    assert shown["verified"] is False
    assert shown["requester_verified"] is False
    assert shown["approver_verified"] is False
    assert world.status_request(denied_path)["verified"] is False

    records = world.records(path)
    assert [r["action"] for r in records] == [
        "request.authorized", "action.started", "action.succeeded",
    ]  # fmt: skip
    for record in records:
        assert record["actor"] == ERIN.email
        identity = record["details"]["identity"]
        assert identity["verified"] is False
        assert identity["requester"] == {
            "identity": ERIN.email,
            "verified": False,
            "commit": clone.parents(merge)[1],
            "author": f"{ERIN.name} <{ERIN.email}>",
            "committer": f"{FRANK.name} <{FRANK.email}>",
            "signer": None,
            "key": None,
        }
        assert identity["approver"]["identity"] == SAM.email
        assert identity["approver"]["verified"] is False
        assert identity["approver"]["commit"] == merge
    denied = one(world.records(denied_path), "request.denied")
    assert denied["details"]["identity"]["verified"] is False
    assert denied["details"]["identity"]["requester"]["committer"] == (
        f"{BOB_EXTERNAL.name} <{BOB_EXTERNAL.email}>"
    )

    world.wait_notes(merge, ["request.authorized", "action.succeeded"])
    world.wait_notes(denied_merge, ["request.denied"])
    listed = world.audit_cli()
    assert listed.returncode == 0, listed.stderr
    rows = {
        action: [line for line in listed.stdout.splitlines() if f" {action} " in line]
        for action in ("request.authorized", "action.succeeded", "request.denied")
    }
    assert all(f"{ERIN.email} (unverified)" in line for line in rows["request.authorized"])
    assert all(f"{ERIN.email} (unverified)" in line for line in rows["action.succeeded"])
    assert f"{BOB_EXTERNAL.email} (unverified)" in rows["request.denied"][0]
    assert len(rows["request.authorized"]) == len(rows["request.denied"]) == 1
