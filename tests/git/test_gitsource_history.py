"""Reading commits from the mirror: trees at old commits, first-parent paths, who added a file."""

from __future__ import annotations

from pathlib import Path

import pytest
from gitrepos import ALICE, BOB, CAROL, CI_BOT, BareRepo, Clone

from reconciler.git.attribution import Identity, attribute
from reconciler.git.mirror import GitSource, Person, UnknownCommit
from reconciler.repo.loader import load_repo, read_tree

PROJECT = Path(__file__).resolve().parents[2]


def test_files_at_reads_the_blobs_of_an_old_commit(source: GitSource, clone: Clone) -> None:
    old = clone.commit(
        "first state",
        author=ALICE,
        files={
            "maps/demo.yaml": "name: old\n",
            "policies/p.yaml": "bindings: []\n",
            "README.md": "not an OpsMap file\n",
            "maps/notes.txt": "ignored\n",
        },
    )
    clone.commit(
        "second state",
        author=BOB,
        files={"maps/demo.yaml": "name: new, and longer\n", "policies/p.yaml": None},
    )
    clone.push()
    source.fetch()

    files = source.files_at(old)

    assert [(f.path, f.kind, f.display) for f in files] == [
        ("maps/demo.yaml", "map", "maps/demo.yaml"),
        ("policies/p.yaml", "policy", "policies/p.yaml"),
    ]
    assert [f.read() for f in files] == [b"name: old\n", b"bindings: []\n"]
    assert [f.size for f in files] == [len(b"name: old\n"), len(b"bindings: []\n")]


def test_files_at_lists_files_in_read_tree_order(source: GitSource, clone: Clone) -> None:
    clone.commit(
        "many files",
        author=ALICE,
        files={
            "opsmap.yaml": "poll_interval_secs: 30\n",
            "maps/z.yaml": "a\n",
            "maps/sub/b.yaml": "b\n",
            "maps/sub/a.yml": "c\n",
            "maps/a-b.yaml": "d\n",
            "inventory/hosts.yaml": "e\n",
            "requests/2026/11/r.yaml": "f\n",
            "requests/ünïcode name.yaml": "g\n",
            "policies/groups.yaml": "h\n",
        },
    )
    head = clone.push()
    source.fetch()

    from_git = [(f.path, f.kind, f.read()) for f in source.files_at(head)]
    from_disk = [(f.path, f.kind, f.read()) for f in read_tree(clone.path)]

    assert from_git == from_disk
    assert len(from_git) == 10


def test_a_commit_tree_loads_like_the_checkout(tmp_path: Path) -> None:
    remote = BareRepo.create(tmp_path / "remote.git")
    clone = Clone.create(remote, tmp_path / "work")
    seed = {
        rel: (PROJECT / rel).read_bytes()
        for rel in ("opsmap.yaml", "maps/demo.yaml", "inventory/local.yaml")
        if (PROJECT / rel).is_file()
    }
    head = clone.commit("the project's examples", author=ALICE, files=seed)
    clone.push()
    source = GitSource(remote.url, cache_dir=tmp_path / "cache")
    source.fetch()

    from_git = load_repo(source.files_at(head))
    from_disk = load_repo(read_tree(clone.path))

    assert [m.model for m in from_git.maps] == [m.model for m in from_disk.maps]
    assert from_git.findings == from_disk.findings


def test_first_parent_path_over_a_merge_and_a_direct_commit(
    source: GitSource, clone: Clone
) -> None:
    base = source.fetch().head
    pr_commit, merge = clone.pull_request(
        "restart-api", {"requests/restart-api.yaml": "action: restart\n"}, author=ALICE, merger=BOB
    )
    direct = clone.commit(
        "direct request",
        author=CAROL,
        committer=CI_BOT,
        files={"requests/flush.yaml": "action: flush\n", "maps/other.yaml": "name: o\n"},
    )
    clone.push()
    source.fetch()

    path = source.first_parent_path(base, direct)

    assert [c.sha for c in path] == [merge, direct]
    merged, straight = path
    assert merged.parents == (base, pr_commit)
    assert merged.is_merge
    assert merged.first_parent == base
    assert (merged.author, merged.committer) == (BOB, BOB)
    assert merged.message == "Merge branch 'restart-api'"
    assert merged.added_requests == ("requests/restart-api.yaml",)
    assert straight.parents == (merge,)
    assert (straight.author, straight.committer) == (CAROL, CI_BOT)
    assert straight.added_requests == ("requests/flush.yaml",)
    assert straight.committed_at > merged.committed_at


def test_a_merge_adds_only_what_its_first_parent_lacks(source: GitSource, clone: Clone) -> None:
    clone.commit("an old request", author=ALICE, files={"requests/old.yaml": "v: 1\n"})
    base = clone.push()
    source.fetch()
    clone.switch("pr", create_from="main")
    clone.commit(
        "edit the old request, add a new one",
        author=ALICE,
        files={"requests/old.yaml": "v: 2\n", "requests/new.yaml": "v: 1\n"},
    )
    clone.switch("main")
    meanwhile = clone.commit("meanwhile on main", author=CAROL, files={"requests/m.yaml": "m\n"})
    merge = clone.merge("pr", by=BOB)
    clone.push()
    source.fetch()

    path = source.first_parent_path(base, merge)

    assert [(c.sha, c.added_requests) for c in path] == [
        (meanwhile, ("requests/m.yaml",)),
        (merge, ("requests/new.yaml",)),
    ]


def test_a_renamed_request_counts_as_added(source: GitSource, clone: Clone) -> None:
    clone.commit("a request", author=ALICE, files={"requests/a.yaml": "action: restart\n"})
    before = clone.push()
    source.fetch()
    renamed = clone.commit(
        "rename",
        author=ALICE,
        files={"requests/a.yaml": None, "requests/b.yaml": b"action: restart\n"},
    )
    clone.push()
    source.fetch()

    (commit,) = source.first_parent_path(before, renamed)

    assert commit.added_requests == ("requests/b.yaml",)


def test_first_parent_path_from_nothing_is_the_whole_chain(source: GitSource, clone: Clone) -> None:
    root = source.fetch().head
    _, merge = clone.pull_request("pr", {"requests/r.yaml": "r\n"}, author=ALICE, merger=BOB)
    clone.push()
    source.fetch()

    path = source.first_parent_path(None, merge)

    assert [c.sha for c in path] == [root, merge]
    assert path[0].parents == ()
    assert path[0].first_parent is None
    assert source.first_parent_path(merge, merge) == []


def test_first_parent_path_after_a_force_push_starts_at_the_merge_base(
    source: GitSource, clone: Clone
) -> None:
    base = source.fetch().head
    clone.commit("dropped", author=ALICE, files={"requests/dropped.yaml": "d\n"})
    dropped = clone.push()
    source.fetch()
    clone.reset_hard(base)
    _, merge = clone.pull_request("pr", {"requests/kept.yaml": "k\n"}, author=ALICE, merger=BOB)
    clone.push(force=True)
    assert source.fetch().forced

    path = source.first_parent_path(dropped, merge)

    assert [(c.sha, c.added_requests) for c in path] == [(merge, ("requests/kept.yaml",))]


def test_first_parent_path_of_an_unknown_commit(source: GitSource) -> None:
    head = source.fetch().head

    with pytest.raises(UnknownCommit, match="no such commit"):
        source.first_parent_path("f" * 40, head)


def requester(source: GitSource, path: str, *, within: str) -> Identity | None:
    """Who asked for ``path`` as ``within`` brought it in, signatures not required."""
    return attribute(source.merged_history(within, signers=None), path, signers=None).requester


def test_the_requester_is_the_author_of_the_pr_commit(source: GitSource, clone: Clone) -> None:
    clone.switch("pr", create_from="main")
    added = clone.commit("ask", author=ALICE, files={"requests/r.yaml": "v: 1\n"})
    clone.commit("fix typo", author=CAROL, files={"requests/r.yaml": "v: 2\n"})
    merge = clone.merge("pr", by=BOB)
    direct = clone.commit("direct", author=CAROL, files={"requests/d.yaml": "d\n"})
    clone.push()
    source.fetch()

    by_merge = attribute(
        source.merged_history(merge, signers=None), "requests/r.yaml", signers=None
    )
    by_direct = requester(source, "requests/d.yaml", within=direct)

    assert by_merge.requester is not None
    assert by_merge.approver is not None
    assert (by_merge.requester.commit, by_merge.requester.author) == (added, ALICE)
    assert by_merge.requester.identity == ALICE.email
    assert not by_merge.verified
    assert not by_merge.requester.verified
    assert (by_merge.approver.commit, by_merge.approver.identity) == (merge, BOB.email)
    assert by_direct is not None
    assert (by_direct.commit, by_direct.author) == (direct, CAROL)


def test_a_file_added_by_the_merge_itself_is_the_mergers(source: GitSource, clone: Clone) -> None:
    clone.switch("pr", create_from="main")
    clone.commit("unrelated", author=ALICE, files={"maps/x.yaml": "x\n"})
    merge = clone.merge("pr", by=BOB, files={"requests/sneaked.yaml": "s\n"})
    clone.push()
    source.fetch()

    found = requester(source, "requests/sneaked.yaml", within=merge)

    assert found is not None
    assert (found.commit, found.author) == (merge, BOB)


def test_the_committer_is_read_besides_the_author(source: GitSource, clone: Clone) -> None:
    direct = clone.commit(
        "request", author=ALICE, committer=CAROL, files={"requests/a.yaml": "a\n"}
    )
    clone.push()
    source.fetch()

    found = requester(source, "requests/a.yaml", within=direct)

    assert found is not None
    assert (found.identity, found.author, found.committer) == (ALICE.email, ALICE, CAROL)
    assert found.to_json()["committer"] == f"{CAROL.name} <{CAROL.email}>"
    assert found.to_json()["verified"] is False


def test_odd_request_names_are_read_back_exactly(source: GitSource, clone: Clone) -> None:
    names = ["requests/*.yaml", "requests/a\nb.yaml", "requests/:x ü.yaml"]
    direct = clone.commit("odd", author=ALICE, files={n: f"{i}\n" for i, n in enumerate(names)})
    clone.push()
    source.fetch()

    history = source.merged_history(direct, signers=None)

    assert sorted(history.blobs) == sorted(names)
    [change] = history.changes
    assert sorted(change.files) == sorted(names)
    assert all(change.files[n].blob == history.blobs[n] for n in names)


def test_identities_are_read_raw_not_through_a_mailmap(source: GitSource, clone: Clone) -> None:
    mailmap = f"{CAROL.name} <{CAROL.email}> {ALICE.name} <{ALICE.email}>\n"
    clone.commit("mailmap", author=ALICE, files={".mailmap": mailmap})
    head = clone.push()
    source.fetch()

    (commit,) = source.first_parent_path(source.first_parent_path(None, head)[0].sha, head)

    assert commit.author == Person(ALICE.name, ALICE.email)


def test_a_file_renamed_into_place_was_added_by_the_renaming_commit(
    source: GitSource, clone: Clone
) -> None:
    clone.switch("pr", create_from="main")
    clone.commit("draft", author=ALICE, files={"requests/draft.yaml": "action: restart\n"})
    renamed = clone.commit(
        "final name",
        author=CAROL,
        files={"requests/draft.yaml": None, "requests/final.yaml": "action: restart\n"},
    )
    merge = clone.merge("pr", by=BOB)
    clone.push()
    source.fetch()

    found = requester(source, "requests/final.yaml", within=merge)

    assert found is not None
    assert (found.commit, found.author) == (renamed, CAROL)
