"""Real git repositories for tests and benchmarks (no pytest needed).

A :class:`BareRepo` plays the remote; a :class:`Clone` of it is where people commit, merge
pull requests (``--no-ff``, by someone other than the author) and push, forced or not.

Git runs here with no global or system config and with every identity and date set in the
environment of its own command, so results do not depend on the machine. Dates advance by
one second per commit from a fixed start: two commits never share a SHA by accident, and
SHAs are the same from run to run.

    remote = BareRepo.create(tmp_path / "remote.git")
    clone = Clone.create(remote, tmp_path / "work")
    clone.commit("add a map", author=ALICE, files={"maps/a.yaml": "name: a\\n"})
    _, merge = clone.pull_request("pr-1", {"requests/r.yaml": "..."}, author=ALICE, merger=BOB)
    clone.push()
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.git.mirror import Person

ALICE = Person("Alice Operator", "alice@example.com")
BOB = Person("Bob Reviewer", "bob@example.com")
CAROL = Person("Carol Admin", "carol@example.com")
CI_BOT = Person("CI Bot", "ci-bot@example.com")

_EPOCH = 1_780_000_000
_clock = itertools.count()
_TIMEOUT_S = 60

Files = Mapping[str, str | bytes | None]
"""Repo-relative path to new content; None deletes the file."""


class GitFailed(Exception):
    """A git command of a test helper failed; the message holds its stderr."""


def git_env(author: Person | None = None, committer: Person | None = None) -> dict[str, str]:
    """The environment of a helper's git command: no user config, given identities only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        GIT_CONFIG_COUNT="3",
        GIT_CONFIG_KEY_0="protocol.file.allow",
        GIT_CONFIG_VALUE_0="always",
        GIT_CONFIG_KEY_1="commit.gpgsign",
        GIT_CONFIG_VALUE_1="false",
        GIT_CONFIG_KEY_2="advice.detachedHead",
        GIT_CONFIG_VALUE_2="false",
    )
    if author is not None:
        committer = committer or author
        date = f"{_EPOCH + next(_clock)} +0000"
        env.update(
            GIT_AUTHOR_NAME=author.name,
            GIT_AUTHOR_EMAIL=author.email,
            GIT_AUTHOR_DATE=date,
            GIT_COMMITTER_NAME=committer.name,
            GIT_COMMITTER_EMAIL=committer.email,
            GIT_COMMITTER_DATE=date,
        )
    return env


def git(
    cwd: Path, *args: str, author: Person | None = None, committer: Person | None = None
) -> str:
    """Run ``git ARGS`` in ``cwd``; stdout without its last newline. Raises :class:`GitFailed`."""
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=git_env(author, committer),
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise GitFailed(f"git {' '.join(args)} in {cwd}: {done.stderr.strip()}")
    return done.stdout.removesuffix("\n")


@dataclass(frozen=True)
class BareRepo:
    """A bare repository: the remote that is pushed to and followed."""

    path: Path

    @classmethod
    def create(cls, path: Path, *, branch: str = "main") -> BareRepo:
        path.parent.mkdir(parents=True, exist_ok=True)
        git(path.parent, "init", "--quiet", "--bare", f"--initial-branch={branch}", str(path))
        return cls(path)

    @property
    def url(self) -> str:
        """Its plain path, as a user would pass it."""
        return str(self.path)

    @property
    def file_url(self) -> str:
        return self.path.resolve().as_uri()

    def head(self, branch: str = "main") -> str:
        return git(self.path, "rev-parse", "--verify", f"refs/heads/{branch}")


@dataclass(frozen=True)
class Clone:
    """A working checkout of a :class:`BareRepo` (``origin``) where commits are made."""

    path: Path
    remote: BareRepo

    @classmethod
    def create(cls, remote: BareRepo, path: Path, *, branch: str = "main") -> Clone:
        path.parent.mkdir(parents=True, exist_ok=True)
        git(path.parent, "clone", "--quiet", remote.url, str(path))
        git(path, "checkout", "--quiet", "-B", branch)
        return cls(path, remote)

    def write(self, files: Files) -> None:
        """Change the working tree: write each file (making folders), or delete it."""
        for rel, content in files.items():
            target = self.path / rel
            if content is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            data = content.encode() if isinstance(content, str) else content
            target.write_bytes(data)

    def commit(
        self,
        message: str,
        *,
        author: Person,
        committer: Person | None = None,
        files: Files | None = None,
    ) -> str:
        """Write ``files``, stage everything, commit on the current branch; the new SHA."""
        self.write(files or {})
        git(self.path, "add", "--all")
        git(
            self.path, "commit", "--quiet", "--allow-empty", "-m", message,
            author=author, committer=committer,
        )  # fmt: skip
        return self.head()

    def switch(self, branch: str, *, create_from: str | None = None) -> None:
        """Check out ``branch``; with ``create_from``, (re)create it there first."""
        if create_from is None:
            git(self.path, "checkout", "--quiet", branch)
        else:
            git(self.path, "checkout", "--quiet", "-B", branch, create_from)

    def merge(
        self,
        branch: str,
        *,
        by: Person,
        into: str = "main",
        message: str | None = None,
        files: Files | None = None,
    ) -> str:
        """Merge ``branch`` into ``into`` with ``--no-ff``, authored and committed by ``by``.

        ``files`` are written and staged into the merge commit itself (an "evil merge").
        """
        self.switch(into)
        text = message or f"Merge branch '{branch}'"
        if files:
            git(self.path, "merge", "--quiet", "--no-ff", "--no-commit", branch, author=by)
            self.write(files)
            git(self.path, "add", "--all")
            git(self.path, "commit", "--quiet", "-m", text, author=by)
        else:
            git(self.path, "merge", "--quiet", "--no-ff", "-m", text, branch, author=by)
        return self.head()

    def pull_request(
        self,
        branch: str,
        files: Files,
        *,
        author: Person,
        merger: Person,
        into: str = "main",
        message: str | None = None,
    ) -> tuple[str, str]:
        """A one-commit PR from ``into`` by ``author``, merged ``--no-ff`` by ``merger``.

        Returns (the PR's commit, the merge commit); leaves ``into`` checked out.
        """
        self.switch(branch, create_from=into)
        commit = self.commit(message or f"PR {branch}", author=author, files=files)
        return commit, self.merge(branch, by=merger, into=into)

    def push(self, branch: str = "main", *, force: bool = False) -> str:
        """Push ``branch`` to the remote's branch of the same name; the pushed SHA."""
        flags = ["--force"] if force else []
        git(
            self.path,
            "push",
            "--quiet",
            *flags,
            "origin",
            f"refs/heads/{branch}:refs/heads/{branch}",
        )
        return self.rev(branch)

    def reset_hard(self, rev: str) -> None:
        git(self.path, "reset", "--quiet", "--hard", rev)

    def rev(self, rev: str) -> str:
        return git(self.path, "rev-parse", "--verify", f"{rev}^{{commit}}")

    def head(self) -> str:
        return self.rev("HEAD")

    def parents(self, rev: str) -> list[str]:
        return git(self.path, "rev-list", "--parents", "-n1", rev).split()[1:]
