"""At most once, through real ``opsmap run`` processes: kill -9 mid-action, force-push,
requests that are history when a reconciler starts with an empty state.

Each test has its own world (its own remote, state directory and reconciler), since each
stops, kills or restarts the reconciler. "Not re-run" is proved by an action that appends
a line to a file on the test host, read after a later request (processed strictly after
it, in commit order) has finished.
"""

from __future__ import annotations

import pytest
from e2e_support import counter, wait_for
from requests_e2e_support import SAM, TINA, WAIT_S, WorldFactory, appending, batch_files, one

pytestmark = [pytest.mark.sshd, pytest.mark.slow]


def test_kill_9_mid_action_reports_unknown_and_never_reruns(make_world: WorldFactory) -> None:
    world = make_world("crash")
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
    entry = world.wait_request(path, ("running",))
    assert entry["commit"] == merge
    wait_for(
        lambda: site.lines("long.log") == ["run"],
        what=f"the long action to start on the host\n{world.tail()}",
        timeout=WAIT_S,
    )
    assert world.journal(path)["state"] == "running"  # type: ignore[index]
    world.crash()

    world.start()
    entry = world.wait_request(path, ("unknown",))
    assert entry["commit"] == merge
    unknown = one(world.records(path), "action.unknown")
    assert unknown["commit"] == merge
    assert unknown["actor"] == SAM.email
    # Who asked survives the crash with the journal: still a claim, with its committer.
    assert unknown["details"]["identity"]["verified"] is False
    assert unknown["details"]["identity"]["requester"]["committer"] == f"{SAM.name} <{SAM.email}>"
    assert counter(world.metrics(), "opsmap_requests_total", result="unknown") == 1
    [shown] = [r for r in world.running.status()["requests"] if r["path"] == path]
    assert (shown["state"], shown["commit"]) == ("unknown", merge)

    # A later request runs, strictly after: the long one was not run again meanwhile.
    later, _ = world.request_pr("mark-after-crash", "batch", "mark", author=SAM, merger=TINA)
    world.push()
    assert world.wait_request(later)["state"] == "succeeded"
    assert site.lines("mark.log") == ["mark"]
    assert site.lines("long.log") == ["run"]
    assert world.journal(path)["state"] == "unknown"  # type: ignore[index]
    metrics = world.metrics()
    assert counter(metrics, "opsmap_requests_total", result="unknown") == 1
    assert counter(metrics, "opsmap_requests_total", result="authorized") == 1
    notes = world.wait_notes(merge, ["request.authorized", "action.started", "action.unknown"])
    assert [r["action"] for r in notes if r["target"].get("request") == path] == [
        "request.authorized",
        "action.started",
        "action.unknown",
    ]


def test_a_force_push_or_the_same_file_merged_again_does_not_rerun(
    make_world: WorldFactory,
) -> None:
    world = make_world("force")
    site, clone = world.site, world.clone
    clone.commit(
        "batch map",
        author=SAM,
        files=batch_files(world, [appending(site, "bump"), appending(site, "mark")]),
    )
    world.start()
    world.wait_applied(world.push())

    path, merge = world.request_pr("bump", "batch", "bump", author=SAM, merger=TINA)
    world.push()
    assert world.wait_request(path)["state"] == "succeeded"
    assert site.lines("bump.log") == ["bump"]

    # Rewrite history: the PR's commit and its merge again, with new SHAs; force-push.
    base = clone.parents(merge)[0]
    clone.reset_hard(base)
    again_path, again = world.request_pr("bump", "batch", "bump", author=SAM, merger=TINA)
    assert again_path == path
    assert again != merge
    head = clone.push(force=True)
    world.wait_applied(head)

    # The same file deleted, then merged again in a later PR.
    world.pr("drop-bump", {path: None}, author=SAM, merger=TINA)
    _, readded = world.request_pr("bump", "batch", "bump", author=SAM, merger=TINA)
    sync, _ = world.request_pr("mark-after-rewrite", "batch", "mark", author=SAM, merger=TINA)
    world.push()

    assert world.wait_request(sync)["state"] == "succeeded"
    assert site.lines("mark.log") == ["mark"]
    assert site.lines("bump.log") == ["bump"]
    entry = world.journal(path)
    assert entry is not None
    assert (entry["state"], entry["commit"]) == ("succeeded", merge)
    assert counter(world.metrics(), "opsmap_requests_total", result="succeeded") == 2
    records = world.records(path)
    assert [r["action"] for r in records] == [
        "request.authorized",
        "action.started",
        "action.succeeded",
    ]
    assert {r["commit"] for r in records} == {merge}
    assert not [
        r
        for r in world.outbox()
        if r["commit"] in (again, readded) and r is not None and r["action"] != "revision.applied"
    ]


def test_requests_on_the_branch_at_the_first_start_are_history(make_world: WorldFactory) -> None:
    """None of them runs; a request merged while the reconciler was stopped runs when it is
    back, since its state remembers where it was."""
    world = make_world("history")
    site = world.site
    world.clone.commit(
        "batch map",
        author=SAM,
        files=batch_files(world, [appending(site, "bump"), appending(site, "mark")]),
    )
    old = [world.request_pr(f"old-{i}", "batch", "bump", author=SAM, merger=TINA) for i in (1, 2)]
    world.start()
    world.wait_applied(world.push())

    first, _ = world.request_pr("mark-1", "batch", "mark", author=SAM, merger=TINA)
    world.push()
    assert world.wait_request(first)["state"] == "succeeded"
    assert site.lines("mark.log") == ["mark"]
    assert site.lines("bump.log") == []
    assert world.journal_paths() == [first]
    assert world.stop() == 0

    while_stopped = [
        world.request_pr("mark-2", "batch", "mark", author=SAM, merger=TINA)[0],
        world.request_pr("bump-3", "batch", "bump", author=SAM, merger=TINA)[0],
    ]
    world.push()
    world.start()
    for path in while_stopped:
        assert world.wait_request(path)["state"] == "succeeded", world.tail()
    assert site.lines("mark.log") == ["mark", "mark"]
    assert site.lines("bump.log") == ["bump"]
    assert world.journal_paths() == [first, *while_stopped]
    # Records written before the stop and after the restart all reach the remote, once.
    wait_for(lambda: world.audit_pending() == 0, what="every record pushed", timeout=WAIT_S)
    notes = world.notes()
    assert notes is not None
    assert [r["id"] for r in notes] == [r["id"] for r in world.outbox()]
    verified = world.audit_cli("verify")
    assert verified.returncode == 0, verified.stderr
    for path, merge in old:
        assert world.journal(path) is None
        assert world.records(path) == []
        assert not [
            r for r in world.outbox() if r["commit"] == merge and r["target"].get("request")
        ]
