"""Helpers of the audit tests: appending sample records, reading notes back with plain git."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitrepos import CAROL, BareRepo, Clone, git

from reconciler.audit import AuditLog, AuditRecord, NotesPublisher
from reconciler.git.mirror import GitSource

NOTES_REF = "refs/notes/opsmap"


@dataclass
class World:
    """A remote with two commits on main, a working clone, and OpsMap's mirror of it."""

    remote: BareRepo
    clone: Clone
    source: GitSource
    first: str
    second: str


def append(
    log: AuditLog, commit: str, action: str = "action.succeeded", **details: Any
) -> AuditRecord:
    record = log.append(
        action=action,
        actor="alice@example.com",
        target={"map": "demo", "component": "api", "action": "restart", "hosts": ["h1"]},
        details=details or {"exit_codes": {"h1": 0}, "duration_s": 0.25},
        commit=commit,
        revision=commit,
    )
    assert record is not None, "the outbox could not store the record"
    return record


def deliver(log: AuditLog, publisher: NotesPublisher) -> None:
    """What the reconciler does: publish what is pending, then mark it delivered."""
    records = log.pending()
    publisher.publish(records)
    log.mark_delivered([r.seq for r in records])


def fetch_notes(repo: Path) -> None:
    git(repo, "fetch", "--quiet", "origin", f"+{NOTES_REF}:{NOTES_REF}")


def note_lines(repo: Path, commit: str) -> list[dict[str, Any]]:
    """The JSON lines of ``commit``'s note in ``repo`` (a clone or a bare repo)."""
    text = git(repo, "notes", f"--ref={NOTES_REF}", "show", commit)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def all_note_ids(repo: Path) -> list[str]:
    """Every record id in every note of ``repo``, duplicates kept."""
    ids = []
    for row in git(repo, "notes", f"--ref={NOTES_REF}", "list").splitlines():
        _, annotated = row.split()
        ids += [line["id"] for line in note_lines(repo, annotated)]
    return ids


def rewrite_note(repo: Path, commit: str, lines: list[dict[str, Any]]) -> None:
    """Replace ``commit``'s note in the clone ``repo`` with ``lines``, and push it."""
    text = "".join(json.dumps(line) + "\n" for line in lines)
    (repo / "note.txt").write_text(text)
    git(repo, "notes", f"--ref={NOTES_REF}", "add", "-f", "-F", "note.txt", commit, author=CAROL)
    (repo / "note.txt").unlink()
    git(repo, "push", "--quiet", "origin", f"{NOTES_REF}:{NOTES_REF}")
