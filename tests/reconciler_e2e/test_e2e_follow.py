"""``opsmap run`` following a real repo: pushes, a rejected revision and its fix, a changed
check, a watched local checkout, a remote that disappears."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from e2e_support import (
    SHA_RE,
    Listener,
    Opsmap,
    command_check,
    component,
    counter,
    file_check,
    free_port,
    repo_files,
    sample_value,
    tcp_check,
    wait_for,
)
from gitrepos import ALICE, BOB, BareRepo, Clone

from reconciler.audit import NOTES_REF

Start = Callable[..., Opsmap]


def test_a_pushed_commit_is_applied_and_its_new_check_runs_without_restart(
    remote: BareRepo, clone: Clone, opsmap: Start, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    flag.touch()
    first_map = [component("a", [file_check("present", flag)])]
    first = clone.commit("first map", author=ALICE, files=repo_files(first_map))
    clone.push()
    service = opsmap(remote.file_url, poll_interval=1)
    service.wait_applied(first)
    service.wait_check("a", "present", "OK")

    second_map = [component("a", [file_check("present", flag), command_check("added", "true")])]
    second = clone.commit("add a check", author=BOB, files=repo_files(second_map))
    pushed = clone.push()

    status = service.wait_applied(pushed)
    assert pushed == second
    assert SHA_RE.fullmatch(status["last_applied_revision"]), status["last_applied_revision"]
    assert status["last_attempted_revision"] == second
    assert status["validation_errors"] == []
    added = service.wait_check("a", "added", "OK")
    assert added["host"] == "e2e-local"
    assert added["last_run"] is not None
    assert service.proc.poll() is None, "the process was restarted"


def test_an_invalid_commit_keeps_the_last_good_revision_until_a_fix(
    remote: BareRepo, clone: Clone, opsmap: Start, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    flag.touch()
    good_map = [component("a", [file_check("present", flag)])]
    good = clone.commit("good map", author=ALICE, files=repo_files(good_map))
    clone.push()
    service = opsmap(remote.file_url, poll_interval=1)
    service.wait_applied(good)
    before = service.wait_check("a", "present", "OK")

    broken = "name: e2e\nversion: '1'\ncomponents: [\n  - id: a\n    name: {oops\n"
    bad = clone.commit("broken yaml", author=ALICE, files={"maps/e2e.yaml": broken})
    clone.push()

    status = wait_for(
        lambda: (s := service.status())["last_attempted_revision"] == bad and s,
        what=f"revision {bad} attempted",
    )
    assert status["last_applied_revision"] == good
    assert status["revision_rejected"] is True
    errors = status["validation_errors"]
    assert errors, status
    assert any(e["file"] == "maps/e2e.yaml" and e["line"] >= 1 for e in errors), errors
    metrics = service.metrics()
    assert sample_value(metrics, "opsmap_revision_rejected") == 1.0
    assert counter(metrics, "opsmap_reconcile_total", result="rejected") >= 1
    assert sample_value(metrics, "opsmap_applied_revision_info", revision=good) == 1.0
    assert f"REVISION {bad[:12]} REJECTED" in service.stderr(), service.tail()
    assert "maps/e2e.yaml" in service.stderr(), service.tail()

    # the last good revision's check keeps running
    wait_for(
        lambda: (k := service.check_of("a", "present")) and k["last_run"] != before["last_run"],
        what="the good revision's check to run again while the bad one is rejected",
    )
    assert service.check_of("a", "present")["hard_state"] == "OK"

    fixed = clone.commit("fix yaml", author=BOB, files=repo_files(good_map))
    clone.push()
    status = service.wait_applied(fixed)
    assert status["last_attempted_revision"] == fixed
    assert status["validation_errors"] == []
    assert status["revision_rejected"] is False
    assert sample_value(service.metrics(), "opsmap_revision_rejected") == 0.0


def test_a_changed_check_takes_effect_without_restart(
    remote: BareRepo, clone: Clone, opsmap: Start
) -> None:
    listening = Listener().open()
    other = Listener(port=free_port())
    try:
        first = clone.commit(
            "tcp check",
            author=ALICE,
            files=repo_files([component("a", [tcp_check("port", listening.port)])]),
        )
        clone.push()
        service = opsmap(remote.file_url, poll_interval=1)
        service.wait_applied(first)
        service.wait_check("a", "port", "OK")

        moved = clone.commit(
            "the service moved to another port",
            author=ALICE,
            files=repo_files([component("a", [tcp_check("port", other.port)])]),
        )
        clone.push()
        service.wait_applied(moved)
        critical = service.wait_check("a", "port", "CRITICAL")
        assert str(other.port) in critical["message"]

        other.open()
        service.wait_check("a", "port", "OK")
        assert service.proc.poll() is None
    finally:
        listening.close()
        other.close()


def test_a_commit_in_a_watched_local_checkout_is_applied_without_webhook(
    clone: Clone, opsmap: Start, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    flag.touch()
    first = clone.commit(
        "first", author=ALICE, files=repo_files([component("a", [file_check("present", flag)])])
    )
    # a long poll interval: only the file watcher can make it see the next commit in time
    service = opsmap(str(clone.path), poll_interval=3600)
    service.wait_applied(first)

    second = clone.commit(
        "second",
        author=BOB,
        files=repo_files([component("a", [file_check("present", flag)]), component("b", [])]),
    )
    status = service.wait_applied(second)
    assert [c["id"] for m in status["maps"] for c in m["components"]] == ["a", "b"]


def test_a_dead_remote_keeps_the_service_running_on_its_revision(
    remote: BareRepo, clone: Clone, opsmap: Start, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    flag.touch()
    first = clone.commit(
        "first", author=ALICE, files=repo_files([component("a", [file_check("present", flag)])])
    )
    clone.push()
    service = opsmap(remote.file_url, poll_interval=1)
    service.wait_applied(first)
    service.wait_check("a", "present", "OK")  # before the remote dies: fetches fail fast
    errors_before = counter(service.metrics(), "opsmap_git_fetch_total", result="error")
    # The revision's audit record is pushed to this remote as a git note: removing the
    # remote while that push writes into it would race with git, not test OpsMap.
    wait_for(
        lambda: (
            counter(service.metrics(), "opsmap_audit_pending") == 0
            and subprocess.run(
                ["git", "--git-dir", str(remote.path), "rev-parse", "--verify", "-q", NOTES_REF],
                capture_output=True,
                check=False,
            ).returncode
            == 0
        ),
        what="the audit note of the first revision pushed to the remote",
    )

    shutil.rmtree(remote.path)

    status = wait_for(
        lambda: (s := service.status())["fetch_error"] and s, what="a fetch error in the status"
    )
    assert status["last_applied_revision"] == first
    wait_for(
        lambda: (
            counter(service.metrics(), "opsmap_git_fetch_total", result="error")
            >= errors_before + 2
        ),
        what="opsmap_git_fetch_total{result='error'} to grow",
    )
    assert service.healthz() == 200
    assert service.status()["last_applied_revision"] == first
    assert service.check_of("a", "present")["hard_state"] == "OK"
    assert service.proc.poll() is None, service.stderr()
    assert "Traceback" not in service.stderr(), service.stderr()


def test_force_pushing_back_to_the_good_revision_clears_the_rejection(
    remote: BareRepo, clone: Clone, opsmap: Start
) -> None:
    good = clone.commit(
        "good", author=ALICE, files=repo_files([component("a", [command_check("ok", "true")])])
    )
    clone.push()
    service = opsmap(remote.file_url, poll_interval=1)
    service.wait_applied(good)
    bad = clone.commit("broken", author=ALICE, files={"maps/e2e.yaml": "name: [\n"})
    clone.push()
    wait_for(
        lambda: service.status()["last_attempted_revision"] == bad,
        what=f"revision {bad} attempted",
    )

    clone.reset_hard(good)  # the bad commit is taken back: the branch is the good one again
    clone.push(force=True)

    status = wait_for(
        lambda: (s := service.status())["last_attempted_revision"] == good and s,
        what="the branch head (the good revision again) to be the attempted revision",
        timeout=15,
    )
    assert status["last_applied_revision"] == good
    assert status["revision_rejected"] is False
    assert status["validation_errors"] == []
    assert sample_value(service.metrics(), "opsmap_revision_rejected") == 0.0


def test_a_plain_git_init_on_master_is_followed_without_a_branch(
    opsmap: Start, tmp_path: Path
) -> None:
    """A new user's first run: `git init` (its branch is master), a map, `opsmap run --repo
    .`: the checkout's own branch is followed, and the log says which."""
    work = tmp_path / "maps"
    subprocess.run(["git", "init", "--quiet", "--initial-branch=master", str(work)], check=True)
    flag = tmp_path / "flag"
    flag.touch()
    for rel, text in repo_files([component("a", [file_check("present", flag)])]).items():
        target = work / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    author = ["-c", "user.name=Alice", "-c", "user.email=alice@example.org"]
    subprocess.run(["git", "-C", str(work), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(work), *author, "commit", "-qm", "first"], check=True)
    head = subprocess.run(
        ["git", "-C", str(work), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()

    service = opsmap(str(work), poll_interval=1)

    status = service.wait_applied(head)
    service.wait_check("a", "present", "OK")
    assert status["branch"] == "master"
    assert "following branch master (the remote's default)" in service.stderr()
