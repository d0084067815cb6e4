"""watch_local: a push into a local bare repo or a commit in a checkout wakes the watcher."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from gitrepos import ALICE, BareRepo, Clone, git

from reconciler.git.mirror import GitSource, GitSourceError, is_local, watch_local

WAIT_S = 20
"""A bound on each scenario, so a missed event fails the test instead of hanging it."""


async def wait_for_yield(changes: AsyncIterator[None], act: Callable[[], object]) -> None:
    """Do ``act`` (in a thread) until the watcher yields; repeat it in case the first
    change happened before the watch was in place."""
    async with asyncio.TaskGroup() as group:
        woke = group.create_task(anext(changes))
        await asyncio.sleep(0)
        while True:
            await asyncio.to_thread(act)
            done, _ = await asyncio.wait({woke}, timeout=2)
            if done:
                return


async def watch_until_woken(path: str | Path, act: Callable[[], object]) -> None:
    stop = asyncio.Event()
    changes = watch_local(path, stop_event=stop)
    async with asyncio.timeout(WAIT_S):
        await wait_for_yield(changes, act)
        stop.set()
        assert await anext(changes, "ended") == "ended"


def commit_and_push(clone: Clone) -> Callable[[], None]:
    def act() -> None:
        clone.commit("change", author=ALICE)
        clone.push()

    return act


def test_a_push_into_a_local_bare_repo_wakes_the_watcher(
    remote: BareRepo, clone: Clone, cache_dir: Path
) -> None:
    asyncio.run(watch_until_woken(remote.url, commit_and_push(clone)))

    assert GitSource(remote.url, cache_dir=cache_dir).fetch().head == remote.head()


def test_a_file_url_is_watched(remote: BareRepo, clone: Clone) -> None:
    asyncio.run(watch_until_woken(remote.file_url, commit_and_push(clone)))


def test_a_commit_in_a_local_checkout_wakes_the_watcher(clone: Clone) -> None:
    asyncio.run(watch_until_woken(clone.path, lambda: clone.commit("local", author=ALICE)))


def test_a_commit_in_a_linked_worktree_wakes_the_watcher(clone: Clone, tmp_path: Path) -> None:
    worktree = tmp_path / "worktree"
    git(clone.path, "worktree", "add", "--quiet", "-b", "side", str(worktree))
    side = Clone(worktree, clone.remote)

    asyncio.run(watch_until_woken(worktree, lambda: side.commit("side", author=ALICE)))


def test_watching_what_is_not_a_local_repo_fails(tmp_path: Path) -> None:
    async def first(url: str) -> None:
        await anext(watch_local(url))

    with pytest.raises(GitSourceError, match="not a git repository"):
        asyncio.run(first(str(tmp_path)))
    with pytest.raises(GitSourceError, match="not a local repository"):
        asyncio.run(first("https://example.com/map.git"))


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("/srv/git/map.git", True),
        ("relative/checkout", True),
        ("./odd:name", True),
        ("~/maps", True),
        ("file:///srv/git/map.git", True),
        ("file://localhost/srv/map.git", True),
        ("file://otherhost/srv/map.git", False),
        ("https://github.com/org/map.git", False),
        ("ssh://git@example.com/org/map.git", False),
        ("git@example.com:org/map.git", False),
        ("example.com:map.git", False),
    ],
)
def test_is_local(url: str, local: bool) -> None:
    assert is_local(url) is local
