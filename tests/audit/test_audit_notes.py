"""Delivering records as git notes to a real bare remote: retries, merges, no duplicates."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from audit_support import NOTES_REF, World, all_note_ids, append, deliver, fetch_notes, note_lines
from gitrepos import ALICE, CAROL, Clone, GitFailed, git

from reconciler.audit import AuditDeliveryError, AuditLog, NotesPublisher, NotesReader
from reconciler.git.mirror import GitSource


def test_git_log_shows_the_records_on_their_commits(
    world: World, log: AuditLog, publisher: NotesPublisher
) -> None:
    applied = append(log, world.first, action="revision.applied")
    authorized = append(log, world.second, action="request.authorized")
    succeeded = append(log, world.second, action="action.succeeded")
    deliver(log, publisher)

    fetch_notes(world.clone.path)
    shown = git(world.clone.path, "log", "--notes=opsmap", "--format=%H%n%N%n--")
    by_commit = {block.split("\n", 1)[0]: block for block in shown.split("--\n") if block.strip()}
    assert applied.id in by_commit[world.first]
    assert authorized.id not in by_commit[world.first]
    assert authorized.id in by_commit[world.second]
    assert succeeded.id in by_commit[world.second]
    assert [line["seq"] for line in note_lines(world.clone.path, world.second)] == [2, 3]
    assert log.pending() == []


def test_an_unreachable_remote_keeps_records_pending_then_delivers_each_once(
    world: World, log: AuditLog, publisher: NotesPublisher, tmp_path: Path
) -> None:
    append(log, world.first)
    deliver(log, publisher)
    away = tmp_path / "remote-away.git"
    world.remote.path.rename(away)
    try:
        more = [append(log, world.second), append(log, world.first)]
        with pytest.raises(AuditDeliveryError) as failure:
            deliver(log, publisher)
        assert "\n" not in str(failure.value)
        assert str(world.remote.path) in str(failure.value)
        assert log.pending() == more
        with pytest.raises(AuditDeliveryError):  # a second failed try changes nothing
            deliver(log, publisher)
        assert log.pending_count() == 2
    finally:
        away.rename(world.remote.path)

    deliver(log, publisher)
    assert log.pending() == []
    deliver(log, publisher)  # nothing pending: nothing pushed twice
    ids = all_note_ids(world.remote.path)
    assert Counter(ids) == Counter(r.id for r in log.all_records())
    assert max(Counter(ids).values()) == 1


def test_republishing_delivered_records_adds_no_line(
    world: World, log: AuditLog, publisher: NotesPublisher
) -> None:
    records = [append(log, world.first), append(log, world.second)]
    publisher.publish(records)
    publisher.publish(records)
    publisher.publish(records[:1])
    assert sorted(all_note_ids(world.remote.path)) == sorted(r.id for r in records)


def test_notes_another_writer_pushed_meanwhile_are_merged_not_lost(
    world: World, log: AuditLog, publisher: NotesPublisher, tmp_path: Path
) -> None:
    deliver_first = append(log, world.first)
    deliver(log, publisher)

    other = Clone.create(world.remote, tmp_path / "other")
    fetch_notes(other.path)
    git(other.path, "notes", f"--ref={NOTES_REF}", "append", "-m", "reviewed by carol",
        world.first, author=CAROL)  # fmt: skip
    git(other.path, "notes", f"--ref={NOTES_REF}", "add", "-m", "a note of carol's",
        world.second, author=CAROL)  # fmt: skip
    git(other.path, "push", "--quiet", "origin", f"{NOTES_REF}:{NOTES_REF}")

    later = [append(log, world.first), append(log, world.second)]
    deliver(log, publisher)
    assert log.pending() == []

    first_note = git(world.remote.path, "notes", f"--ref={NOTES_REF}", "show", world.first)
    second_note = git(world.remote.path, "notes", f"--ref={NOTES_REF}", "show", world.second)
    assert "reviewed by carol" in first_note
    assert "a note of carol's" in second_note
    assert deliver_first.id in first_note
    assert later[0].id in first_note
    assert later[1].id in second_note
    lines = [line for line in f"{first_note}\n{second_note}".splitlines() if line.strip()]
    assert len(lines) == len(set(lines)) == 5


def test_a_fresh_mirror_merges_with_the_notes_already_on_the_remote(
    world: World, log: AuditLog, publisher: NotesPublisher, tmp_path: Path
) -> None:
    append(log, world.first)
    deliver(log, publisher)
    fresh = GitSource(world.remote.url, cache_dir=tmp_path / "new-cache", timeout_s=30)
    fresh.fetch()
    append(log, world.first)
    deliver(log, NotesPublisher(fresh.mirror, fresh.url, timeout_s=30))
    assert sorted(line["seq"] for line in note_lines(world.remote.path, world.first)) == [1, 2]


def test_a_commit_force_pushed_away_still_gets_its_note(
    world: World, log: AuditLog, publisher: NotesPublisher
) -> None:
    world.clone.reset_hard(world.first)
    rewritten = world.clone.commit("rewrite history", author=ALICE, files={"x.txt": "x\n"})
    world.clone.push(force=True)
    world.source.fetch()
    record = append(log, world.second, action="action.unknown")
    deliver(log, publisher)

    notes = NotesReader(world.remote.path).read()
    assert [(found.note_of, found.record.id) for found in notes.records] == [
        (world.second, record.id)
    ]
    assert world.source.local_head() == rewritten


def test_without_push_notes_stay_in_the_mirror(world: World, log: AuditLog) -> None:
    publisher = NotesPublisher(world.source.mirror, world.source.url, push=False, timeout_s=30)
    record = append(log, world.first)
    deliver(log, publisher)
    assert [line["id"] for line in note_lines(world.source.mirror, world.first)] == [record.id]
    with pytest.raises(GitFailed, match="no note found"):
        git(world.remote.path, "notes", f"--ref={NOTES_REF}", "show", world.first)


def test_credentials_in_the_remote_url_never_show_in_errors(world: World, log: AuditLog) -> None:
    url = "https://opsmap:s3cr3t-token@127.0.0.1:9/maps.git"
    publisher = NotesPublisher(world.source.mirror, url, timeout_s=30)
    append(log, world.first)
    with pytest.raises(AuditDeliveryError) as failure:
        deliver(log, publisher)
    assert "s3cr3t" not in str(failure.value)
    assert "https://***@127.0.0.1:9/maps.git" in str(failure.value)
    assert log.pending_count() == 1


def test_bad_arguments_are_refused(world: World) -> None:
    with pytest.raises(ValueError, match="not a repository URL"):
        NotesPublisher(world.source.mirror, "--upload-pack=evil")
    with pytest.raises(ValueError, match="not a notes ref"):
        NotesPublisher(world.source.mirror, world.source.url, notes_ref="refs/heads/main")
