"""``opsmap audit`` and ``opsmap audit verify`` on real repos: output, exit codes, tampering."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from audit_support import World, append, deliver, fetch_notes, note_lines, rewrite_note

from reconciler.audit import AuditLog, AuditRecord, NotesPublisher
from reconciler.cli import main


@pytest.fixture
def published(world: World, log: AuditLog, publisher: NotesPublisher) -> list[AuditRecord]:
    """Four records delivered to the remote: two on each commit."""
    records = [
        append(log, world.first, action="revision.applied", maps=["demo"]),
        append(
            log,
            world.second,
            action="request.authorized",
            decision="allow",
            rule="operator may restart demo/api",
        ),
        append(log, world.second, action="action.succeeded", duration_s=0.5, reason=None),
        log.append(
            action="component.status_changed",
            actor="opsmap",
            target={"map": "demo", "component": "api"},
            details={"from": "ok", "to": "error"},
            commit=world.first,
            revision=world.first,
        ),
    ]
    deliver(log, publisher)
    return records


def opsmap(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["audit", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_lists_records_in_seq_order(
    world: World, published: list[AuditRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = opsmap(capsys, "--repo", str(world.remote.path))
    assert (code, err) == (0, "")
    header, *rows = out.splitlines()
    assert header.split() == ["SEQ", "TIME", "ACTION", "ACTOR", "TARGET", "COMMIT", "SUMMARY"]
    assert [row.split()[0] for row in rows] == ["1", "2", "3", "4"]
    assert rows[1].split()[2:6] == [
        "request.authorized", "alice@example.com", "demo/api/restart", world.second[:12],
    ]  # fmt: skip
    assert "allow: operator may restart demo/api" in rows[1]
    assert "succeeded in 0.5s" in rows[2]
    assert "ok -> error" in rows[3]
    assert "maps: demo" in rows[0]


def test_json_of_one_commit_in_a_clone_that_fetched_the_notes(
    world: World, published: list[AuditRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    fetch_notes(world.clone.path)
    code, out, _ = opsmap(
        capsys, "--repo", str(world.clone.path), "--commit", world.second[:10], "--format", "json"
    )
    assert code == 0
    assert json.loads(out) == [published[1].to_json(), published[2].to_json()]


def test_verify_an_intact_chain(
    world: World, published: list[AuditRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = opsmap(capsys, "verify", "--repo", str(world.remote.path))
    assert code == 0
    assert out == "chain intact: 4 records\n"


def test_an_edited_note_breaks_verify_naming_the_record(
    world: World, published: list[AuditRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    fetch_notes(world.clone.path)
    lines = note_lines(world.clone.path, world.second)
    victim = next(line for line in lines if line["action"] == "request.authorized")
    victim["details"]["rule"] = "admin may do anything"
    rewrite_note(world.clone.path, world.second, lines)

    code, out, err = opsmap(capsys, "verify", "--repo", str(world.remote.path))
    assert code == 1
    assert out == ""
    assert f"record seq 2 (id {victim['id']}, commit {world.second})" in err
    assert "hash does not match" in err


def test_a_deleted_record_breaks_verify_as_a_gap(
    world: World, published: list[AuditRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    fetch_notes(world.clone.path)
    lines = [line for line in note_lines(world.clone.path, world.second) if line["seq"] != 3]
    rewrite_note(world.clone.path, world.second, lines)

    code, _, err = opsmap(capsys, "verify", "--repo", str(world.remote.path))
    assert code == 1
    assert f"record seq 4 (id {published[3].id}" in err
    assert "seq 3 missing" in err


def test_a_line_that_is_not_a_record_breaks_verify_but_lists(
    world: World, published: list[AuditRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    fetch_notes(world.clone.path)
    lines = note_lines(world.clone.path, world.first)
    rewrite_note(world.clone.path, world.first, [*lines, {"note": "hello"}])

    code, _, err = opsmap(capsys, "verify", "--repo", str(world.remote.path))
    assert code == 1
    assert f"note of {world.first}, line 3: not an audit record" in err
    code, out, err = opsmap(capsys, "--repo", str(world.remote.path))
    assert code == 0
    assert len(out.splitlines()) == 5
    assert "warning" in err


def test_not_a_repo_and_no_notes_are_usage_errors(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    code, _, err = opsmap(capsys, "verify", "--repo", str(plain))
    assert code == 2
    assert err == f"opsmap: error: {plain}: not a git repository\n"
    code, _, err = opsmap(capsys, "--repo", str(world.remote.path))
    assert code == 2
    assert "no refs/notes/opsmap" in err
    code, _, err = opsmap(capsys, "--repo", str(tmp_path / "missing"))
    assert code == 2
    assert "not a directory" in err


def test_an_unknown_commit_is_a_usage_error(
    world: World, published: list[AuditRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = opsmap(capsys, "--repo", str(world.remote.path), "--commit", "nope")
    assert code == 2
    assert "no such commit" in err


def test_the_console_script_prints_no_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "audit", "verify", "--repo", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("opsmap: error: ")
