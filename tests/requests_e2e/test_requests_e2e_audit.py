"""The audit trail through a real ``opsmap run``: an unreachable remote loses nothing and,
once back, gets every record exactly once; an edited note breaks ``opsmap audit verify``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e_support import wait_for
from gitrepos import git
from requests_e2e_support import SAM, TINA, WAIT_S, WorldFactory, appending, batch_files, one

pytestmark = [pytest.mark.sshd, pytest.mark.slow]


def gated(site_dir: Path) -> dict[str, object]:
    """An action that starts, then waits (bounded) for the test to create ``gate``."""
    return {
        "name": "gated",
        "command": (
            f"echo run >>{site_dir}/gated.log; i=0; "
            f"while [ ! -e {site_dir}/gate ]; do "
            "i=$((i + 1)); [ $i -gt 1200 ] && exit 1; sleep 0.1; done; "
            f"echo done >>{site_dir}/gated.log"
        ),
        "timeout_secs": 300,
    }


def test_unreachable_remote_then_recovery_delivers_every_record_once(
    make_world: WorldFactory,
) -> None:
    world = make_world("audit")
    site, remote = world.site, world.remote
    world.clone.commit(
        "batch map",
        author=SAM,
        files=batch_files(world, [gated(site.dir), appending(site, "mark")]),
    )
    world.start()
    world.wait_applied(world.push())
    wait_for(lambda: world.audit_pending() == 0, what="the first records pushed", timeout=WAIT_S)

    path, merge = world.request_pr("gated", "batch", "gated", author=SAM, merger=TINA)
    world.push()
    world.wait_request(path, ("running",))
    wait_for(lambda: site.lines("gated.log") == ["run"], what="the action started", timeout=WAIT_S)

    # The remote goes away while the request is being processed.
    away = remote.path.with_name("map.git.away")
    remote.path.rename(away)
    try:
        (site.dir / "gate").touch()
        assert world.wait_request(path)["state"] == "succeeded"
        assert site.lines("gated.log") == ["run", "done"]
        status = wait_for(
            lambda: (s := world.running.status())["audit_delivery_error"] and s,
            what=f"a failed delivery reported\n{world.tail()}",
            timeout=WAIT_S,
        )
        assert status["audit_pending"] > 0
        pending = world.audit_pending()
        assert pending is not None
        assert pending > 0
        undelivered = world.query("SELECT count(*) FROM audit_records WHERE delivered_at IS NULL")
        assert undelivered[0][0] > 0
        # Fetches fail too (expected); the reconciler keeps running and says so.
        wait_for(
            lambda: world.running.status()["fetch_error"],
            what=f"a failed fetch reported\n{world.tail()}",
            timeout=WAIT_S,
        )
        assert world.audit_pending() == pending
    finally:
        away.rename(remote.path)

    wait_for(
        lambda: world.audit_pending() == 0,
        what=f"pending records delivered after the remote came back\n{world.tail()}",
        timeout=WAIT_S,
    )
    assert world.running.status()["audit_delivery_error"] is None
    outbox = world.outbox()
    notes = world.notes()
    assert notes is not None
    ids = [r["id"] for r in notes]
    assert len(ids) == len(set(ids)), "a record was delivered twice"
    assert [r["seq"] for r in notes] == list(range(1, len(notes) + 1))
    assert sorted(ids) == sorted(r["id"] for r in outbox), "records lost or invented"
    assert notes == sorted(outbox, key=lambda r: r["seq"])
    about = [r["action"] for r in notes if r["target"].get("request") == path]
    assert about == ["request.authorized", "action.started", "action.succeeded"]
    verified = world.audit_cli("verify")
    assert verified.returncode == 0, verified.stderr
    assert f"{len(notes)} records" in verified.stdout

    # Tampering: edit one record of one note in a clone, push it; verify names that record.
    assert world.stop() == 0
    clone = world.clone.path
    git(clone, "fetch", "--quiet", "origin", "+refs/notes/opsmap:refs/notes/opsmap")
    note = git(clone, "notes", "--ref", "opsmap", "show", merge)
    edited_lines = []
    target = one([json.loads(line) for line in note.splitlines()], "action.succeeded")
    for line in note.splitlines():
        record = json.loads(line)
        if record["id"] == target["id"]:
            record["details"]["exit_codes_were"] = "rewritten"
            line = json.dumps(record, separators=(",", ":"))
        edited_lines.append(line)
    edited = Path(world.root / "edited-note")
    edited.write_text("\n".join(edited_lines) + "\n")
    git(clone, "notes", "--ref", "opsmap", "add", "-f", "-F", str(edited), merge, author=SAM)
    git(clone, "push", "--quiet", "origin", "refs/notes/opsmap:refs/notes/opsmap")

    broken = world.audit_cli("verify")
    assert broken.returncode == 1, (broken.stdout, broken.stderr)
    assert f"record seq {target['seq']} (id {target['id']}" in broken.stderr, broken.stderr
    assert "record edited" in broken.stderr
