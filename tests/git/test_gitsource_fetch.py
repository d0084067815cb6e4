"""GitSource against real remotes: fetching, the cheap no-change path, force-pushes, errors."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from gitrepos import ALICE, BOB, BareRepo, Clone, git

from reconciler.git.mirror import (
    FetchResult,
    GitSource,
    GitSourceError,
    RemoteUnreachable,
    UnknownCommit,
)


class CountingSource(GitSource):
    """A GitSource that records the git subcommand of every command it runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: list[str] = []

    def _run(self, *args: str, **kwargs: Any) -> tuple[int, bytes]:
        self.commands.append(args[0])
        return super()._run(*args, **kwargs)


def test_first_fetch_mirrors_the_branch_head(source: GitSource, remote: BareRepo) -> None:
    assert source.local_head() is None

    result = source.fetch()

    assert result == FetchResult(head=remote.head(), changed=True, forced=False)
    assert source.local_head() == remote.head()
    assert source.mirror.is_dir()
    assert git(source.mirror, "rev-parse", "--is-bare-repository") == "true"


def test_fetch_picks_up_a_new_commit(source: GitSource, clone: Clone) -> None:
    first = source.fetch().head
    second = clone.commit("more", author=BOB, files={"maps/b.yaml": "name: b\n"})
    clone.push()

    assert source.remote_head() == second
    result = source.fetch()

    assert result == FetchResult(head=second, changed=True, forced=False)
    assert source.is_ancestor(first, second)


def test_unchanged_remote_costs_an_ls_remote_and_no_fetch(
    remote: BareRepo, clone: Clone, cache_dir: Path
) -> None:
    source = CountingSource(remote.url, cache_dir=cache_dir)
    source.fetch()
    assert "fetch" in source.commands
    reflog = git(source.mirror, "reflog", "show", "refs/heads/main")
    source.commands.clear()

    for _ in range(3):
        assert source.fetch() == FetchResult(head=remote.head(), changed=False, forced=False)

    assert "fetch" not in source.commands
    assert source.commands.count("ls-remote") == 3
    assert git(source.mirror, "reflog", "show", "refs/heads/main") == reflog


def test_force_push_is_detected(source: GitSource, clone: Clone) -> None:
    base = source.fetch().head
    clone.commit("to be dropped", author=ALICE, files={"maps/x.yaml": "name: x\n"})
    dropped = clone.push()
    assert source.fetch() == FetchResult(head=dropped, changed=True, forced=False)

    clone.reset_hard(base)
    rewritten = clone.commit("rewritten", author=BOB, files={"maps/y.yaml": "name: y\n"})
    clone.push(force=True)

    assert source.fetch() == FetchResult(head=rewritten, changed=True, forced=True)
    assert not source.is_ancestor(dropped, rewritten)
    # The dropped head stays readable in the mirror, for the history after it.
    assert [f.path for f in source.files_at(dropped)] == ["maps/demo.yaml", "maps/x.yaml"]


def test_fast_forward_after_a_rewind_to_an_old_head_is_forced(
    source: GitSource, clone: Clone
) -> None:
    base = source.fetch().head
    clone.commit("later", author=ALICE)
    clone.push()
    source.fetch()

    clone.reset_hard(base)
    clone.push(force=True)

    assert source.fetch() == FetchResult(head=base, changed=True, forced=True)


def test_a_local_checkout_is_followed_without_being_touched(clone: Clone, cache_dir: Path) -> None:
    clone.write({"maps/draft.yaml": "name: draft\n"})
    status = git(clone.path, "status", "--porcelain")
    source = GitSource(str(clone.path), cache_dir=cache_dir)

    assert source.fetch().head == clone.head()

    assert git(clone.path, "status", "--porcelain") == status
    assert not (clone.path / ".git" / "FETCH_HEAD").exists()
    assert source.mirror.parent == cache_dir


def test_a_file_url_is_followed(remote: BareRepo, clone: Clone, cache_dir: Path) -> None:
    source = GitSource(remote.file_url, cache_dir=cache_dir)

    assert source.fetch().head == remote.head()


def test_a_dead_remote_gives_one_clear_line(
    source: GitSource, remote: BareRepo, tmp_path: Path
) -> None:
    source.fetch()
    remote.path.rename(tmp_path / "gone.git")

    with pytest.raises(RemoteUnreachable) as caught:
        source.fetch()

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{remote.path.resolve()}: ")
    assert "does not appear to be a git repository" in message
    assert "Traceback" not in message
    assert caught.value.__cause__ is None


def test_a_missing_branch_is_an_error(remote: BareRepo, clone: Clone, cache_dir: Path) -> None:
    source = GitSource(remote.url, branch="release", cache_dir=cache_dir)

    assert source.remote_head() is None
    with pytest.raises(GitSourceError, match="no branch 'release' on the remote"):
        source.fetch()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_a_remote_that_never_answers_times_out(silent_server: int, cache_dir: Path) -> None:
    source = GitSource(f"git://127.0.0.1:{silent_server}/map.git", cache_dir=cache_dir, timeout_s=1)

    with pytest.raises(RemoteUnreachable, match=r"git ls-remote timed out after 1s"):
        source.fetch()


def test_credentials_in_a_url_never_show(cache_dir: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"https://alice:s3cret-token@127.0.0.1:{port}/map.git"
    source = GitSource(url, cache_dir=cache_dir, timeout_s=10)

    with pytest.raises(RemoteUnreachable) as caught:
        source.remote_head()

    assert "s3cret" not in str(caught.value)
    assert "s3cret" not in repr(source)
    assert "s3cret" not in str(source.mirror)
    assert caught.value.remote == f"https://***@127.0.0.1:{port}/map.git"


def test_only_full_shas_of_fetched_commits_are_read(source: GitSource) -> None:
    head = source.fetch().head

    for rev in ("HEAD", "main", head[:12], "--output=/tmp/x", "0" * 40):
        with pytest.raises(UnknownCommit):
            source.files_at(rev)


@pytest.mark.parametrize("branch", ["-x", "a..b", "a b", "x.lock", ""])
def test_bad_branch_names_are_refused(branch: str, cache_dir: Path) -> None:
    with pytest.raises(ValueError, match="not a branch name"):
        GitSource("/srv/map.git", branch=branch, cache_dir=cache_dir)


def test_two_branches_of_one_remote_get_two_mirrors(remote: BareRepo, cache_dir: Path) -> None:
    main = GitSource(remote.url, cache_dir=cache_dir)
    release = GitSource(remote.url, branch="release", cache_dir=cache_dir)

    assert main.mirror != release.mirror
    assert main.mirror.name.startswith("remote-")


def test_calls_from_many_threads_are_serialized(source: GitSource, clone: Clone) -> None:
    clone.commit("one more", author=ALICE)
    head = clone.push()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: source.fetch(), range(8)))

    assert {r.head for r in results} == {head}
    assert sum(r.changed for r in results) == 1
