"""The gates agree on requests: the pre-commit hook, ``opsmap validate``, ``opsmap plan``
and ``opsmap run``, on the same commits of one real repo.

A request that ran is history. When a later commit renames the component it named, the
old file is a warning that says it is history, in every gate, ``--strict`` included, and
``opsmap run`` applies the commit; a request that a pull request *adds* naming the old
name is an error in the hook, ``validate`` and ``plan``, and ``opsmap run`` denies it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from e2e_support import Opsmap, command_check, inventory, map_text, wait_for
from gitrepos import ALICE, BOB, BareRepo, Clone, git

PROJECT = Path(__file__).resolve().parents[2]
HOOKS = yaml.safe_load((PROJECT / ".pre-commit-hooks.yaml").read_text())


def files(component_id: str, marker: Path) -> dict[str, str | bytes | None]:
    web = {
        "id": component_id,
        "name": "Web",
        "type": "service",
        "hosts": {"labels": {"role": "e2e"}},
        "checks": [command_check("up", "true")],
        "actions": [{"name": "restart", "command": f"echo ran >> '{marker}'"}],
    }
    policy = {
        "description": "e2e",
        "permissions": [{"user": p.email, "role": "admin"} for p in (ALICE, BOB)],
    }
    return {
        "inventory/local.yaml": inventory(),
        "maps/e2e.yaml": map_text([web]),
        "policies/e2e.yaml": yaml.safe_dump(policy),
    }


def request(component_id: str) -> str:
    return yaml.safe_dump(
        {"map": "e2e", "component": component_id, "action": "restart", "reason": "test"}
    )


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def hook(hook_id: str, names: list[str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The hook of ``.pre-commit-hooks.yaml`` as pre-commit runs it: its entry, then the
    file names (when ``pass_filenames``) that its ``files`` pattern selects."""
    spec = next(h for h in HOOKS if h["id"] == hook_id)
    entry = spec["entry"].split()
    assert entry[0] == "opsmap"
    chosen = [n for n in names if re.search(spec.get("files", ""), n)]
    return cli(*entry[1:], *(chosen if spec.get("pass_filenames", True) else []), cwd=cwd)


def tracked(clone: Clone) -> list[str]:
    return git(clone.path, "ls-files").splitlines()


def warnings_of(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return list(json.loads(done.stdout)["warnings"])


def test_history_warns_in_every_gate_and_a_new_stale_request_fails_in_every_gate(
    remote: BareRepo, clone: Clone, opsmap: Callable[..., Opsmap], tmp_path: Path
) -> None:
    marker = tmp_path / "restarted"
    first = clone.commit("web", author=ALICE, files=files("web", marker))
    clone.push()
    service = opsmap(remote.file_url)
    service.wait_applied(first)

    # a request runs, once
    _, ran = clone.pull_request(
        "restart", {"requests/r1.yaml": request("web")}, author=ALICE, merger=BOB
    )
    clone.push()
    wait_for(lambda: marker.exists(), what=f"the restart to run\n{service.tail()}")

    # the component is renamed: requests/r1.yaml, history, names what is gone
    renamed = clone.commit("web is www", author=ALICE, files=files("www", marker))
    clone.push()
    service.wait_applied(renamed)

    plain = cli("validate", ".", cwd=clone.path)
    strict = cli("validate", "--strict", "--format", "json", ".", cwd=clone.path)
    plan = cli("plan", "--base", ran, "--format", "json", cwd=clone.path)
    changed = hook("opsmap-validate", ["maps/e2e.yaml"], cwd=clone.path)
    all_files = hook("opsmap-validate", tracked(clone), cwd=clone.path)
    whole = hook("opsmap-validate-repo", [], cwd=clone.path)
    for done in (plain, strict, plan, changed, all_files, whole):
        assert done.returncode == 0, [*done.args, done.stdout, done.stderr]
    assert "requests/r1.yaml:2:1: warning: map 'e2e' has no component 'web'" in plain.stdout
    assert "this request was merged before the change under review" in plain.stdout
    assert "[history-request]" in plain.stdout
    assert [w["code"] for w in warnings_of(strict)] == ["history-request"]
    assert [w["file"] for w in warnings_of(strict)] == ["requests/r1.yaml"]
    assert [w["code"] for w in warnings_of(plan)] == ["history-request"]
    assert "history-request" in all_files.stdout
    assert changed.stdout == ""
    assert marker.read_text() == "ran\n"  # not again

    # a pull request adds a request naming the old name: staged, then committed
    clone.switch("stale", create_from="main")
    clone.write({"requests/r2.yaml": request("web")})
    git(clone.path, "add", "requests/r2.yaml")
    staged = hook("opsmap-validate", ["requests/r2.yaml"], cwd=clone.path)
    staged_whole = hook("opsmap-validate-repo", [], cwd=clone.path)
    pr = clone.commit("restart web again", author=ALICE)
    committed = cli("validate", ".", cwd=clone.path)
    based = cli("validate", "--strict", "--base", "main", ".", cwd=clone.path)
    planned = cli("plan", "--base", "main", "--head", "stale", cwd=clone.path)
    for done in (staged, staged_whole, committed, based):
        assert done.returncode == 1, [*done.args, done.stdout, done.stderr]
        assert "requests/r2.yaml:2:1: error: map 'e2e' has no component 'web'" in done.stdout
        assert "r1.yaml:2:1: error" not in done.stdout
    assert planned.returncode == 1, planned.stdout + planned.stderr
    assert "No plan: `stale` does not validate: **1 error(s)**" in planned.stdout
    assert "requests/r2.yaml:2:1: error: map 'e2e' has no component 'web'" in planned.stderr
    assert "r1.yaml:2:1: error" not in planned.stderr

    # merged anyway: opsmap run applies the commit and denies the request, as the gates said
    merge = clone.merge("stale", by=BOB)
    clone.push()
    service.wait_applied(merge)
    denied = wait_for(
        lambda: next(
            (r for r in service.status()["requests"] if r["path"] == "requests/r2.yaml"
             and r["state"] == "denied"),
            None,
        ),
        what=f"requests/r2.yaml denied\n{service.tail()}",
    )  # fmt: skip
    assert "no component 'web'" in denied["rule"]
    after = cli("validate", ".", cwd=clone.path)  # the merge, against its first parent
    assert after.returncode == 1
    assert "requests/r2.yaml:2:1: error" in after.stdout
    assert pr != merge
    assert marker.read_text() == "ran\n"
    assert os.path.exists(clone.path / "requests" / "r1.yaml")
