"""Real git repos for the plan tests: a base commit and a head commit from plain folders."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

BASE_AUTHOR = "CI Bot <ci-bot@example.com>"
HEAD_AUTHOR = "Alice Operator <alice@example.com>"
_DATE = "1780000000 +0000"


def git(cwd: Path, *args: str, author: str = BASE_AUTHOR) -> str:
    name, _, email = author.partition(" <")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME=name,
        GIT_AUTHOR_EMAIL=email.rstrip(">"),
        GIT_COMMITTER_NAME=name,
        GIT_COMMITTER_EMAIL=email.rstrip(">"),
        GIT_AUTHOR_DATE=_DATE,
        GIT_COMMITTER_DATE=_DATE,
    )
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


def commit_tree(repo: Path, tree: Path, message: str, *, author: str) -> str:
    """Make the work tree exactly ``tree``'s files, commit them all; the new commit's SHA."""
    for child in repo.iterdir():
        if child.name != ".git":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    shutil.copytree(tree, repo, dirs_exist_ok=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message, author=author)
    return git(repo, "rev-parse", "HEAD")


def make_repo(repo: Path, base: Path, head: Path, *, head_author: str = HEAD_AUTHOR) -> None:
    """A repo whose tag ``base`` holds ``base``'s files and whose HEAD holds ``head``'s."""
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    commit_tree(repo, base, "base", author=BASE_AUTHOR)
    git(repo, "tag", "base")
    commit_tree(repo, head, "head", author=head_author)
