"""The state directory with real ``opsmap run`` processes: one reconciler per directory,
and only a directory and a database that are OpsMap's, at a schema it knows."""

from __future__ import annotations

import hashlib
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_support import Opsmap, component, file_check, repo_files, stop_group
from gitrepos import ALICE, BareRepo, Clone

from reconciler.audit import AuditLog, verify_chain
from reconciler.store.sqlite import APPLICATION_ID, SCHEMA_VERSION, SqliteStore

Start = Callable[..., Opsmap]
REFUSAL_GUARD_S = 60
"""A refused start exits at once; past this the test calls it hung (not a speed goal)."""

# The first release's schema, as it wrote it: StateStore's tables then user_version 1,
# and the journal's and the outbox's tables when they were first used.
RELEASE_1_SCRIPTS = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS check_status (
    map TEXT NOT NULL, component TEXT NOT NULL, check_name TEXT NOT NULL, host TEXT NOT NULL,
    state INTEGER, state_type TEXT NOT NULL, hard_state INTEGER, attempt INTEGER NOT NULL,
    message TEXT NOT NULL, value REAL, last_run REAL, duration REAL, last_hard_change REAL,
    flapping INTEGER NOT NULL, history TEXT NOT NULL,
    PRIMARY KEY (map, component, check_name, host)
);
PRAGMA user_version=1;
""",
    """
CREATE TABLE IF NOT EXISTS requests (
    path TEXT PRIMARY KEY,
    commit_sha TEXT NOT NULL,
    requester TEXT,
    approver TEXT,
    state TEXT NOT NULL,
    rule TEXT NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL,
    outcome TEXT
);
""",
    """
CREATE TABLE IF NOT EXISTS audit_records (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    hash TEXT NOT NULL,
    record TEXT NOT NULL,
    created_at REAL NOT NULL,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS audit_records_pending ON audit_records (seq)
    WHERE delivered_at IS NULL;
""",
)
TABLES = ("meta", "check_status", "requests", "audit_records")


def run_refused(repo: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    """``opsmap run`` expected to refuse the directory: it must exit by itself."""
    argv = [
        sys.executable, "-m", "reconciler", "run", "--repo", repo,
        "--state-dir", str(state_dir), "--listen", "127.0.0.1:0", "--poll-interval", "3600",
    ]  # fmt: skip
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=REFUSAL_GUARD_S,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("opsmap: error: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` with a digest of its content (``dir`` for a directory)."""
    return {
        str(p.relative_to(root)): "dir"
        if p.is_dir()
        else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


def db_facts(path: Path) -> tuple[int, int, set[str]]:
    with sqlite3.connect(path) as db:
        application_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    db.close()
    return application_id, version, names


@pytest.fixture
def first(remote: BareRepo, clone: Clone, tmp_path: Path) -> str:
    """A pushed map with one hourly file check (OK while ``tmp_path/flag`` exists)."""
    flag = tmp_path / "flag"
    flag.touch()
    check = file_check("present", flag, interval=3600)
    sha = clone.commit("hourly", author=ALICE, files=repo_files([component("a", [check])]))
    clone.push()
    return sha


def test_a_second_reconciler_on_the_same_state_dir_exits_2_naming_the_first(
    remote: BareRepo, first: str, opsmap: Start, state_dir: Path
) -> None:
    running = opsmap(remote.file_url, poll_interval=3600)
    running.wait_applied(first)
    line = one_error_line(run_refused(remote.file_url, state_dir))
    assert f"pid {running.proc.pid} " in line, line
    assert "started 20" in line, line
    assert "in use by another OpsMap" in line, line
    assert running.status()["last_applied_revision"] == first  # the first one goes on
    assert stop_group(running.proc, signal.SIGTERM) == 0, running.stderr()

    store = SqliteStore(state_dir)  # free again once the holder is gone
    try:
        actions = [r.action for r in AuditLog(store.outbox).all_records()]
    finally:
        store.close()
    assert actions.count("revision.applied") == 1, actions
    again = opsmap(remote.file_url, poll_interval=3600)
    assert again.first_status is not None
    assert again.first_status["last_applied_revision"] == first


def test_a_non_empty_directory_that_is_not_opsmaps_is_refused_untouched(
    remote: BareRepo, tmp_path: Path
) -> None:
    foreign = tmp_path / "home"
    (foreign / "projects").mkdir(parents=True)
    (foreign / "notes.txt").write_text("my notes\n")
    before = tree(foreign)
    line = one_error_line(run_refused(remote.file_url, foreign))
    assert "is not empty and is not OpsMap's" in line, line
    assert "notes.txt" in line, line
    assert tree(foreign) == before  # no lock file, no marker, no git mirror


@pytest.mark.parametrize("marked", [False, True], ids=["bare", "with-marker"])
def test_another_programs_sqlite_file_is_refused_untouched(
    remote: BareRepo, state_dir: Path, marked: bool
) -> None:
    state_dir.mkdir()
    with sqlite3.connect(state_dir / "opsmap.sqlite3") as other:
        other.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        other.execute("INSERT INTO users (name) VALUES ('alice')")
        other.execute("PRAGMA user_version=7")
    other.close()
    if marked:
        (state_dir / "opsmap-state").write_text("an OpsMap state directory\n")
    before = tree(state_dir)
    line = one_error_line(run_refused(remote.file_url, state_dir))
    assert "is not OpsMap's database" in line, line
    assert "users" in line, line
    after = tree(state_dir)
    if marked:  # the directory says it is OpsMap's: its lock file may stay
        after.pop("opsmap.lock", None)
    assert after == before


def test_a_file_that_is_no_database_is_refused(remote: BareRepo, state_dir: Path) -> None:
    state_dir.mkdir()
    (state_dir / "opsmap-state").write_text("an OpsMap state directory\n")
    (state_dir / "opsmap.sqlite3").write_bytes(b"SQLite format 3\x00" + b"\xff" * 4080)
    line = one_error_line(run_refused(remote.file_url, state_dir))
    assert "opsmap.sqlite3 is not an SQLite database OpsMap can read" in line, line
    assert not (state_dir / "git").exists()


def test_a_database_of_a_newer_opsmap_is_refused(remote: BareRepo, state_dir: Path) -> None:
    SqliteStore(state_dir).close()
    with sqlite3.connect(state_dir / "opsmap.sqlite3") as db:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    line = one_error_line(run_refused(remote.file_url, state_dir))
    assert f"written by a newer OpsMap (schema {SCHEMA_VERSION + 1};" in line, line
    assert db_facts(state_dir / "opsmap.sqlite3")[1] == SCHEMA_VERSION + 1
    assert not (state_dir / "git").exists()


def build_release_1(state_dir: Path, *, rows_from: Path) -> None:
    """A state directory as the first release left it (no marker, no lock file), holding
    the rows and the git mirror of ``rows_from``: what that release kept for the same runs."""
    state_dir.mkdir()
    for folder in ("git", "checkout"):
        if (rows_from / folder).exists():
            shutil.copytree(rows_from / folder, state_dir / folder, symlinks=True)
    db = sqlite3.connect(state_dir / "opsmap.sqlite3")
    try:
        db.execute("PRAGMA journal_mode=WAL")
        for script in RELEASE_1_SCRIPTS:
            db.executescript(script)
        db.execute("ATTACH DATABASE ? AS later", (str(rows_from / "opsmap.sqlite3"),))
        with db:
            for table in TABLES:  # the columns release 1 had (later ones were added since)
                info = db.execute(f"PRAGMA main.table_info({table})").fetchall()
                columns = ", ".join(row[1] for row in info)
                db.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM later.{table}")
        db.execute("DETACH DATABASE later")
    finally:
        db.close()


def test_a_first_release_state_dir_migrates_forward_and_keeps_its_state(
    remote: BareRepo, first: str, opsmap: Start, tmp_path: Path
) -> None:
    earlier = tmp_path / "earlier"
    service = opsmap(remote.file_url, poll_interval=3600, state_dir=earlier)
    service.wait_applied(first)
    before = service.wait_check("a", "present", "OK")
    assert stop_group(service.proc, signal.SIGTERM) == 0, service.stderr()
    records_before = _records(earlier)

    old = tmp_path / "release-1"
    build_release_1(old, rows_from=earlier)
    assert db_facts(old / "opsmap.sqlite3")[:2] == (0, 1)
    (tmp_path / "flag").unlink()  # were the check to run again at once, it would be CRITICAL

    migrated = opsmap(remote.file_url, poll_interval=3600, state_dir=old)
    status = migrated.first_status
    assert status is not None
    assert status["last_applied_revision"] == first
    after = migrated.check_of("a", "present")
    for field in ("hard_state", "message", "last_run"):
        assert after[field] == before[field], (field, after, before)
    assert stop_group(migrated.proc, signal.SIGTERM) == 0, migrated.stderr()
    assert "Traceback" not in migrated.stderr()

    application_id, version, names = db_facts(old / "opsmap.sqlite3")
    assert (application_id, version) == (APPLICATION_ID, SCHEMA_VERSION)
    assert "requests_running" in names
    assert (old / "opsmap-state").is_file()
    records = _records(old)
    assert records[: len(records_before)] == records_before
    assert verify_chain(records) is None


def test_a_migration_that_fails_leaves_the_old_schema_as_it_was(
    remote: BareRepo, state_dir: Path
) -> None:
    state_dir.mkdir()
    db = sqlite3.connect(state_dir / "opsmap.sqlite3")
    db.executescript(RELEASE_1_SCRIPTS[0])  # a first release that died before the others
    db.execute("CREATE INDEX requests_running ON check_status (map)")  # the new index's name
    db.close()
    line = one_error_line(run_refused(remote.file_url, state_dir))
    assert "requests_running" in line, line
    application_id, version, names = db_facts(state_dir / "opsmap.sqlite3")
    assert (application_id, version) == (0, 1)
    assert "requests" not in names  # rolled back
    assert "audit_records" not in names
    assert not (state_dir / "opsmap-state").exists()


def _records(state_dir: Path) -> list[object]:
    store = SqliteStore(state_dir)
    try:
        return list(AuditLog(store.outbox).all_records())
    finally:
        store.close()
