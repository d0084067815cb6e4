"""Stopping and starting ``opsmap run``: SIGTERM while a check runs, state kept across runs."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

from e2e_support import Opsmap, command_check, component, file_check, repo_files, stop_group
from e2e_support import wait_for as wait
from gitrepos import ALICE, BareRepo, Clone

Start = Callable[..., Opsmap]
HANG_GUARD_S = 30
"""How long a SIGTERM'd process may take before the test calls it hung (not a speed goal)."""


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of a live process; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def descendants(root: int) -> set[int]:
    """Every live process whose chain of parents reaches ``root``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := proc_stat(int(entry.name))) is not None:
            parents[int(entry.name)] = stat[1]
    found: set[int] = set()
    for pid in parents:
        seen, current = set(), pid
        while current in parents and current not in seen:
            seen.add(current)
            current = parents[current]
            if current == root:
                found.add(pid)
                break
    return found


def alive(pid: int) -> bool:
    stat = proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def test_sigterm_cancels_an_in_flight_check_and_exits_0(
    remote: BareRepo, clone: Clone, opsmap: Start
) -> None:
    slow = command_check("slow", "sleep 30", interval=3600, timeout=60)
    first = clone.commit("slow check", author=ALICE, files=repo_files([component("a", [slow])]))
    clone.push()
    service = opsmap(remote.file_url, poll_interval=3600)
    service.wait_applied(first)

    def sleeping() -> set[int]:
        return {pid for pid in descendants(service.proc.pid) if cmdline(pid)[:2] == ["sleep", "30"]}

    sleepers = wait(sleeping, what="the check's `sleep 30` to be running")
    in_flight = service.check_of("a", "slow")
    assert in_flight["last_run"] is None, in_flight

    os.killpg(service.proc.pid, 0)  # still there
    service.proc.send_signal(signal.SIGTERM)  # the process only, not its group
    try:
        code = service.proc.wait(timeout=HANG_GUARD_S)
    finally:
        stop_group(service.proc, signal.SIGKILL)
    assert code == 0, service.stderr()
    left = [pid for pid in sleepers if alive(pid)]
    assert not left, f"`sleep 30` still running after opsmap exited: pids {left}"
    assert "Traceback" not in service.stderr(), service.stderr()


def test_a_restart_keeps_revisions_and_check_results(
    remote: BareRepo, clone: Clone, opsmap: Start, tmp_path: Path, state_dir: Path
) -> None:
    flag = tmp_path / "flag"
    flag.touch()
    # an hourly check: after the restart it must not run again before the first status
    hourly = file_check("present", flag, interval=3600)
    first = clone.commit("hourly", author=ALICE, files=repo_files([component("a", [hourly])]))
    clone.push()
    service = opsmap(remote.file_url, poll_interval=3600)
    service.wait_applied(first)
    before = service.wait_check("a", "present", "OK")
    assert before["last_run"] is not None
    assert stop_group(service.proc, signal.SIGTERM) == 0, service.stderr()

    sqlite = [p for p in state_dir.rglob("*") if p.is_file() and _is_sqlite(p)]
    assert sqlite, f"no SQLite file under {state_dir}: {sorted(state_dir.rglob('*'))}"

    flag.unlink()  # were the check to run again, it would be CRITICAL
    again = opsmap(remote.file_url, poll_interval=3600)
    status = again.first_status  # the first status after the restart
    assert status is not None
    assert status["last_applied_revision"] == first
    assert status["last_attempted_revision"] == first
    after = next(
        (k for m in status["maps"] for c in m["components"] for k in c["checks"]),
        None,
    )
    assert after is not None, f"the first status after a restart shows no check: {status}"
    for field in ("hard_state", "state", "message", "last_run", "last_state_change"):
        assert after[field] == before[field], (field, after, before)


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(16) == b"SQLite format 3\x00"


def test_the_log_says_where_it_serves_and_what_it_applied(
    remote: BareRepo, clone: Clone, opsmap: Start
) -> None:
    first = clone.commit("first", author=ALICE, files=repo_files([component("a", [])]))
    clone.push()
    service = opsmap(remote.file_url, poll_interval=3600)  # --log-level defaults to INFO
    service.wait_applied(first)
    wait(
        lambda: f"revision {first[:12]} applied" in service.stderr(),
        what=f"the INFO line 'revision {first[:12]} applied' in the log",
        timeout=10,
    )
    assert f"http://127.0.0.1:{service.port}" in service.stderr()
