"""A map repo's working tree and commits are read without following a symlink out of them.

Each case puts a link (a file, a folder, deep down, the top-level ``maps/``, ``opsmap.yaml``)
or a FIFO into a valid repo, next to a sentinel outside it that holds a fake CI token.
Every command that reads a working tree (``validate`` in each format, ``check``,
``policy``, ``graph``) and ``plan`` (which reads commits) runs as the real CLI: the entry
is a finding that names it, the token appears nowhere, and nothing blocks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
SHOP = PROJECT / "tests" / "plan" / "golden" / "check-changed" / "head"
TOKEN = "ghp_FAKE0TOKEN0sentinel0abcdefghijklmnopqrstuv"
"""A secret outside the repo: a scalar, so it would be valid YAML if it were read."""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _outside(tmp: Path) -> Path:
    """A folder outside the repo holding the token as YAML in every place a link may aim."""
    outside = tmp / "outside"
    (outside / "deeper").mkdir(parents=True)
    for path in (outside / "token.yaml", outside / "deeper" / "token.yaml"):
        path.write_text(TOKEN + "\n")
    return outside


Setup = Callable[[Path, Path], str]
"""Puts something hostile into ``repo`` (aimed at ``outside``); returns the entry's path."""


def file_link(repo: Path, outside: Path) -> str:
    (repo / "maps" / "leak.yaml").symlink_to(outside / "token.yaml")
    return "maps/leak.yaml"


def folder_link(repo: Path, outside: Path) -> str:
    (repo / "maps" / "more").symlink_to(outside, target_is_directory=True)
    return "maps/more"


def deep_link(repo: Path, outside: Path) -> str:
    deep = repo / "policies" / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "leak.yaml").symlink_to(os.path.relpath(outside / "token.yaml", deep))
    return "policies/a/b/c/leak.yaml"


def top_folder_link(repo: Path, outside: Path) -> str:
    shutil.rmtree(repo / "inventory")
    (repo / "inventory").symlink_to(outside, target_is_directory=True)
    return "inventory"


def settings_link(repo: Path, outside: Path) -> str:
    (repo / "opsmap.yaml").symlink_to(outside / "token.yaml")
    return "opsmap.yaml"


def fifo(repo: Path, outside: Path) -> str:
    os.mkfifo(repo / "maps" / "pipe.yaml")
    return "maps/pipe.yaml"


CASES = [file_link, folder_link, deep_link, top_folder_link, settings_link, fifo]


@pytest.fixture(params=CASES, ids=lambda case: case.__name__)
def hostile(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str, str]:
    """A valid repo with one hostile entry: (repo, entry path, expected code)."""
    repo = tmp_path / "repo"
    shutil.copytree(SHOP, repo)
    entry = request.param(repo, _outside(tmp_path))
    code = "not-a-file" if request.param is fifo else "symlink"
    return repo, entry, code


def assert_clean(done: subprocess.CompletedProcess[str]) -> None:
    for stream in (done.stdout, done.stderr):
        assert TOKEN not in stream
        assert TOKEN[:12] not in stream
        assert "Traceback" not in stream


@pytest.mark.parametrize("fmt", ["text", "json", "github"])
def test_validate_reports_the_entry_and_never_its_target(
    hostile: tuple[Path, str, str], fmt: str
) -> None:
    repo, entry, code = hostile
    done = cli("validate", ".", "--format", fmt, cwd=repo)
    assert done.returncode == 1, done.stdout + done.stderr
    assert_clean(done)
    if fmt == "text":
        assert f"{entry}:1:1: error: " in done.stdout
    assert f"[{code}]" in done.stdout or f'"code": "{code}"' in done.stdout


def test_named_file_that_is_a_link_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(SHOP, repo)
    file_link(repo, _outside(tmp_path))
    done = cli("validate", "maps/leak.yaml", cwd=repo)
    assert done.returncode == 1
    assert_clean(done)
    assert "maps/leak.yaml:1:1: error: is a symlink" in done.stdout


def test_named_file_under_a_linked_folder_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(SHOP, repo)
    folder_link(repo, _outside(tmp_path))
    done = cli("validate", "maps/more/token.yaml", cwd=repo)
    assert done.returncode == 1
    assert_clean(done)
    assert "a symlink on the way" in done.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["check", "--repo", "."],
        ["policy", "can", "alice@example.com", "view", "shop/nginx", "--repo", "."],
        ["graph", "shop", "--repo", "."],
    ],
    ids=["check", "policy", "graph"],
)
def test_other_commands_refuse_the_repo_without_reading_the_target(
    hostile: tuple[Path, str, str], command: list[str]
) -> None:
    repo, entry, _ = hostile
    done = cli(*command, cwd=repo)
    assert_clean(done)
    if command[0] == "graph":  # graph draws a map that loaded: the links are not in it
        assert "token" not in done.stdout
    else:
        assert done.returncode == 2
        assert f"{entry}:1:1: error: " in done.stderr


def test_the_loaded_files_hold_nothing_of_the_target(tmp_path: Path) -> None:
    from reconciler.repo.loader import load_repo, read_tree

    repo = tmp_path / "repo"
    shutil.copytree(SHOP, repo)
    outside = _outside(tmp_path)
    for case in (file_link, folder_link, deep_link, settings_link, fifo):
        case(repo, outside)
    loaded = load_repo(read_tree(repo))
    codes = sorted((f.location.file, f.code) for f in loaded.findings)
    assert codes == [
        ("maps/leak.yaml", "symlink"),
        ("maps/more", "symlink"),
        ("maps/pipe.yaml", "not-a-file"),
        ("opsmap.yaml", "symlink"),
        ("policies/a/b/c/leak.yaml", "symlink"),
    ]
    assert [m.model.name for m in loaded.maps] == ["shop"]


def _git(repo: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="A",
        GIT_AUTHOR_EMAIL="a@example.com",
        GIT_COMMITTER_NAME="A",
        GIT_COMMITTER_EMAIL="a@example.com",
    )
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, timeout=60)


LINKS = [file_link, folder_link, deep_link, top_folder_link, settings_link]


@pytest.mark.parametrize("case", LINKS)
@pytest.mark.parametrize("fmt", ["markdown", "json"])
def test_plan_refuses_a_committed_link(tmp_path: Path, case: Setup, fmt: str) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(SHOP, repo)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    entry = case(repo, _outside(tmp_path))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "head")
    done = cli("plan", "--base", "HEAD^", "--format", fmt, cwd=repo)
    assert done.returncode == 1, done.stdout + done.stderr
    assert_clean(done)
    assert entry in done.stdout
    assert "symlink" in done.stdout
