"""``opsmap plan`` refuses a head whose inventory names a file it must not read.

The head is a real commit: a symlink in its tree is mode 120000, and the plan says so at
the inventory's line without following it or showing what it points at.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from reconciler.cli import main

SENTINEL = "root:SENTINEL-PASSWD-LINE:0:0"
INVENTORY = "hosts:\n  - name: web-01\n    known_hosts: {value}\n"


def git(repo: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Alice",
        "GIT_AUTHOR_EMAIL": "alice@example.com",
        "GIT_COMMITTER_NAME": "Alice",
        "GIT_COMMITTER_EMAIL": "alice@example.com",
    }
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "inventory").mkdir(parents=True)
    git(root, "init", "--quiet", "-b", "main")
    (root / "inventory" / "known_hosts").write_text("[10.0.0.1]:22 ssh-ed25519 AAAA\n")
    (root / "inventory" / "hosts.yaml").write_text(INVENTORY.format(value="inventory/known_hosts"))
    git(root, "add", "--all")
    git(root, "commit", "--quiet", "-m", "base")
    git(root, "branch", "base")
    (tmp_path / "passwd").write_text(SENTINEL + "\n")
    return root


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("inventory/linked", "symlink"),
        ("../passwd", "contains '..'"),
        ("inventory", "not a regular file"),
    ],
)
def test_plan_refuses_a_known_hosts_it_must_not_read(
    repo: Path, value: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    os.symlink(repo.parent / "passwd", repo / "inventory" / "linked")
    (repo / "inventory" / "hosts.yaml").write_text(INVENTORY.format(value=value))
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "head")
    assert main(["plan", "--base", "base", "--repo", str(repo)]) == 1
    out, err = capsys.readouterr()
    # an invalid head makes plan write its Markdown report of the findings
    assert "| `inventory/hosts.yaml:3:5` | error | `unsafe-known-hosts` |" in out, out
    assert reason in out, out
    assert "SENTINEL" not in out + err
