"""A map repo owned by another user (a service user following /srv/maps, a CI container on
a runner's workspace): OpsMap's own git calls name it a safe directory, so git's "dubious
ownership" refusal does not stop them; and when git does refuse, its whole message
(its hint included) reaches the user, credentials masked.

Run as root, the repos are given to ``nobody``; as another user they cannot be given
away, and the tests are skipped.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest
from gitrepos import BOB, BareRepo, Clone

from reconciler.git.mirror import GitSource, GitSourceError
from reconciler.git.runner import GitRunner
from reconciler.plan.revisions import LocalRepo

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a repo away")


def give_away(path: Path, uid: int | None = None) -> None:
    """``chown -R`` ``path`` to ``nobody`` (or back to ``uid``)."""
    owner = pwd.getpwnam("nobody").pw_uid if uid is None else uid
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(root, name), owner, -1)
    os.lchown(path, owner, -1)


@pytest.mark.parametrize("kind", ["work-tree", "work-tree-file-url", "bare"])
def test_a_source_owned_by_another_user_is_followed(
    kind: str, remote: BareRepo, clone: Clone, cache_dir: Path
) -> None:
    repo = remote.path if kind == "bare" else clone.path
    url = {"work-tree": str(clone.path), "bare": remote.url}.get(kind, clone.path.as_uri())
    first = clone.head()
    give_away(repo)
    source = GitSource(url, cache_dir=cache_dir, timeout_s=30)

    assert source.fetch().head == first

    give_away(repo, os.geteuid())
    second = clone.commit("more", author=BOB, files={"maps/b.yaml": "name: b\n"})
    clone.push()
    give_away(repo)
    assert source.fetch().head == second
    assert source.files_at(second)


def test_gits_whole_refusal_reaches_the_user(clone: Clone) -> None:
    give_away(clone.path)
    runner = GitRunner(remote="maps", timeout_s=30)

    with pytest.raises(GitSourceError) as caught:
        runner.run("-C", str(clone.path), "rev-parse", "HEAD", git_dir=None)

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("maps: detected dubious ownership in repository at")
    # git's hint, which its first line alone would lose, says what to run
    assert f"call: git config --global --add safe.directory {clone.path}" in message


def test_plan_reads_a_checkout_owned_by_another_user(clone: Clone) -> None:
    head = clone.head()
    give_away(clone.path)

    repo = LocalRepo(clone.path)

    assert repo.resolve("HEAD") == head
    assert [e.path for e in repo.tree(head)] == ["maps/demo.yaml"]
