"""``opsmap run`` with its state in PostgreSQL (the session's throwaway cluster): where the
URL comes from, the one-line refusals (never a password), and the state it keeps there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from e2e_support import Opsmap, component, file_check, repo_files, stop_group, wait_for
from gitrepos import ALICE, BareRepo, Clone
from pgcluster import PASSWORD, Cluster

Start = Callable[..., Opsmap]
REFUSAL_GUARD_S = 60
"""A refused start exits at once; past this the test calls it hung (not a speed goal)."""


def run_refused(
    repo: str, state_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [
        sys.executable, "-m", "reconciler", "run", "--repo", repo, "--state-dir",
        str(state_dir), "--listen", "127.0.0.1:0", "--poll-interval", "3600", *args,
    ]  # fmt: skip
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=REFUSAL_GUARD_S,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        check=False,
    )


def one_error_line(done: subprocess.CompletedProcess[str], *, code: int = 2) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code, (done.returncode, done.stderr)
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("opsmap: error: "), done.stderr
    assert "Traceback" not in done.stderr
    assert PASSWORD not in done.stderr + done.stdout
    return lines[0]


def url_file(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "state-url"
    path.write_text(url + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def first(remote: BareRepo, clone: Clone, tmp_path: Path) -> str:
    """A pushed map with one hourly file check (OK while ``tmp_path/flag`` exists)."""
    flag = tmp_path / "flag"
    flag.touch()
    check = file_check("present", flag, interval=3600)
    sha = clone.commit("hourly", author=ALICE, files=repo_files([component("a", [check])]))
    clone.push()
    return sha


def test_an_unreachable_database_is_one_line_with_its_password_masked(
    remote: BareRepo, first: str, pg_cluster: Cluster, tmp_path: Path, state_dir: Path
) -> None:
    url = pg_cluster.url("absent", tcp=True)
    line = one_error_line(
        run_refused(remote.file_url, state_dir, "--state-url-file", str(url_file(tmp_path, url)))
    )
    assert "cannot connect to the state database postgresql://opsmap:***@127.0.0.1:" in line
    assert 'database "absent" does not exist' in line
    closed = f"postgresql://opsmap:{PASSWORD}@127.0.0.1:1/x"  # nothing listens on port 1
    line = one_error_line(run_refused(remote.file_url, state_dir, env={"OPSMAP_STATE_URL": closed}))
    assert "postgresql://opsmap:***@127.0.0.1:1/x" in line
    assert not (state_dir / "opsmap.sqlite3").exists()


def test_a_password_with_url_syntax_in_it_is_never_shown(
    remote: BareRepo, first: str, tmp_path: Path, state_dir: Path
) -> None:
    """``#``, ``?`` and ``@`` end a URL's password for a URL parser, not for libpq: the
    masking reads it as the driver does. A bad ``%`` escape, which libpq refuses quoting
    the token, is refused without it; and so is a bad ``key=value`` string."""
    for password in ("pa#ss-Zq9", "pa?ss-Zq9", "pa%40ss-Zq9"):
        closed = f"postgresql://opsmap:{password}@127.0.0.1:1/x"  # nothing listens on port 1
        done = run_refused(remote.file_url, state_dir, env={"OPSMAP_STATE_URL": closed})
        line = one_error_line(done)
        assert "postgresql://opsmap:***@127.0.0.1:1/x" in line
        assert "Zq9" not in done.stderr + done.stdout
        assert "ss-" not in done.stderr + done.stdout
    keyvalue = "host=127.0.0.1 port=1 user=opsmap password='a b#Zq9' dbname=x"
    done = run_refused(remote.file_url, state_dir, env={"OPSMAP_STATE_URL": keyvalue})
    assert "password=*** " in one_error_line(done)
    assert "Zq9" not in done.stderr + done.stdout
    refusals = (
        "postgresql://opsmap:pa%zzZq9@127.0.0.1:1/x",
        "postgresql://opsmap:pa@ss-Zq9@127.0.0.1:1/x",
        "host=h password=Zq9 junk",
    )
    for refused in refusals:
        done = run_refused(
            remote.file_url, state_dir, "--state-url-file", str(url_file(tmp_path, refused))
        )
        assert "it is not shown: it may hold a password" in one_error_line(done)
        assert "Zq9" not in done.stderr + done.stdout
    assert not (state_dir / "opsmap.sqlite3").exists()


def test_a_value_that_is_no_database_url_is_a_usage_error_that_echoes_nothing(
    remote: BareRepo, tmp_path: Path, state_dir: Path
) -> None:
    line = one_error_line(
        run_refused(remote.file_url, state_dir, "--state", f"mysql://u:{PASSWORD}@db/x")
    )
    assert "--state: expected a postgresql:// URL" in line
    bad = url_file(tmp_path, f"{PASSWORD} not a url")
    line = one_error_line(run_refused(remote.file_url, state_dir, "--state-url-file", str(bad)))
    assert f"--state-url-file {bad}: expected a postgresql:// URL" in line
    missing = tmp_path / "missing"
    line = one_error_line(run_refused(remote.file_url, state_dir, "--state-url-file", str(missing)))
    assert f"cannot read {missing}" in line


def test_run_keeps_its_state_in_the_database_and_a_second_one_is_refused(
    remote: BareRepo,
    first: str,
    opsmap: Start,
    pg_cluster: Cluster,
    tmp_path: Path,
    state_dir: Path,
) -> None:
    database = pg_cluster.database()
    url = pg_cluster.url(database, tcp=True)
    running = opsmap(remote.file_url, poll_interval=3600,
                     extra_args=("--state-url-file", str(url_file(tmp_path, url))))  # fmt: skip
    running.wait_applied(first)
    with psycopg.connect(url, autocommit=True) as conn:
        wait_for(
            lambda: conn.execute("SELECT count(*) FROM check_status").fetchone() == (1,),
            what="the check's status stored in PostgreSQL",
        )
        actions = [
            r[0]
            for r in conn.execute(
                "SELECT record::json->>'action' FROM audit_records ORDER BY seq"
            ).fetchall()
        ]
    assert "revision.applied" in actions
    assert not (state_dir / "opsmap.sqlite3").exists()  # the directory keeps the mirror only
    with open(f"/proc/{running.proc.pid}/cmdline", "rb") as cmdline:
        assert PASSWORD.encode() not in cmdline.read()

    other = tmp_path / "other-state"  # another directory, the same database
    line = one_error_line(run_refused(remote.file_url, other, env={"OPSMAP_STATE_URL": url}))
    assert "is in use by another OpsMap" in line
    assert f"pid {running.proc.pid} " in line
    assert running.status()["last_applied_revision"] == first  # the first one goes on
    assert stop_group(running.proc, signal.SIGTERM) == 0, running.stderr()
    assert PASSWORD not in running.stderr()
    assert "postgresql://opsmap:***@127.0.0.1" in running.stderr()  # its log names it, masked
