"""Without a branch, GitSource follows the remote's default branch, as ``git clone`` takes
it: the branch the remote's HEAD names (``master`` for a repo made by a plain ``git
init``), then main, then master where HEAD names none that exists."""

from __future__ import annotations

from pathlib import Path

import pytest
from gitrepos import ALICE, BareRepo, Clone, git

from reconciler.git.mirror import GitSource, RemoteUnreachable


def _remote_on(tmp_path: Path, branch: str) -> tuple[BareRepo, Clone]:
    remote = BareRepo.create(tmp_path / "remote.git", branch=branch)
    work = Clone.create(remote, tmp_path / "work", branch=branch)
    work.commit("first", author=ALICE, files={"maps/demo.yaml": "name: demo\n"})
    work.push(branch)
    return remote, work


@pytest.mark.parametrize("branch", ["master", "trunk", "release/2027"])
def test_the_branch_head_names_is_followed(tmp_path: Path, branch: str) -> None:
    remote, _ = _remote_on(tmp_path, branch)
    source = GitSource(remote.url, cache_dir=tmp_path / "cache", timeout_s=30)

    fetched = source.fetch()

    assert fetched.head == remote.head(branch)
    assert source.branch == branch
    assert source.local_head() == remote.head(branch)


def test_a_plain_local_checkout_is_followed_on_its_branch(tmp_path: Path) -> None:
    """`git init` then `opsmap run --repo .`: the checkout's HEAD is its branch."""
    work = tmp_path / "maps"
    git(tmp_path, "init", "--quiet", "--initial-branch=master", str(work))
    (work / "opsmap.yaml").write_text("{}\n")
    git(work, "add", "-A")
    git(work, "-c", "user.name=A", "-c", "user.email=a@example.org", "commit", "-qm", "first")
    source = GitSource(str(work), cache_dir=tmp_path / "cache", timeout_s=30)

    assert source.fetch().head == git(work, "rev-parse", "HEAD")
    assert source.branch == "master"


def test_a_head_that_names_no_branch_falls_back_to_main(tmp_path: Path) -> None:
    remote, work = _remote_on(tmp_path, "main")
    git(remote.path, "symbolic-ref", "HEAD", "refs/heads/gone")
    source = GitSource(remote.url, cache_dir=tmp_path / "cache", timeout_s=30)

    assert source.fetch().head == work.head()
    assert source.branch == "main"


def test_a_change_of_the_default_branch_is_followed(tmp_path: Path) -> None:
    remote, work = _remote_on(tmp_path, "main")
    source = GitSource(remote.url, cache_dir=tmp_path / "cache", timeout_s=30)
    source.fetch()
    work.switch("next", create_from="main")
    moved = work.commit("on next", author=ALICE)
    work.push("next")

    git(remote.path, "symbolic-ref", "HEAD", "refs/heads/next")
    fetched = source.fetch()

    assert (fetched.head, fetched.changed, source.branch) == (moved, True, "next")


def test_a_remote_without_a_default_branch_says_to_give_one(tmp_path: Path) -> None:
    remote, _ = _remote_on(tmp_path, "trunk")
    git(remote.path, "symbolic-ref", "HEAD", "refs/heads/gone")
    source = GitSource(remote.url, cache_dir=tmp_path / "cache", timeout_s=30)

    with pytest.raises(RemoteUnreachable, match=r"no default branch on the remote.*--branch"):
        source.fetch()


def test_a_given_branch_is_followed_whatever_head_names(tmp_path: Path) -> None:
    remote, work = _remote_on(tmp_path, "master")
    work.switch("main", create_from="master")
    main = work.commit("on main", author=ALICE)
    work.push("main")
    source = GitSource(remote.url, branch="main", cache_dir=tmp_path / "cache", timeout_s=30)

    assert source.fetch().head == main
    assert source.branch == "main"
