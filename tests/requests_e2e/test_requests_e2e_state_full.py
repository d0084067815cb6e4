"""State errors never kill the loop and never lose a decision, through a real ``opsmap run``.

A real small tmpfs is mounted as the state directory (its ``git/`` mirror bind-mounted
from the ordinary disk, so that fetching goes on) and filled by a file while the
reconciler runs against the test sshd and a real ``file://`` remote. Mounting needs root
(``CAP_SYS_ADMIN``): elsewhere the test is skipped, saying so.
"""

from __future__ import annotations

import contextlib
import errno
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import command_check, find_check, wait_for
from requests_e2e_support import (
    MAP,
    SAM,
    SRE_ADMIN,
    TINA,
    WAIT_S,
    World,
    WorldFactory,
    appending,
    component,
    map_yaml,
    policy_yaml,
)

pytestmark = [pytest.mark.sshd, pytest.mark.slow]

TMPFS_SIZE = "8m"
"""Small, and below the 4 MiB (1000 pages) at which SQLite checkpoints the WAL by itself:
once the file system is full, every commit needs new space (none is reused meanwhile)."""
FULL = "database or disk is full"


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def small_state_dir(world: World) -> Iterator[Path]:
    """``world.state_dir`` on a tmpfs of :data:`TMPFS_SIZE`, its ``git/`` on the disk.

    ``opsmap run`` makes the directory its own first (and is stopped); its mirror is then
    moved to the disk and bind-mounted back in place."""
    state, disk_git = world.state_dir, world.root / "git-on-disk"
    state.mkdir(parents=True)
    mounted = _mount("-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(state))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        world.start()
        assert world.stop() == 0
        shutil.move(state / "git", disk_git)
        (state / "git").mkdir()
        bound = _mount("--bind", str(disk_git), str(state / "git"))
        if bound.returncode != 0:
            pytest.skip(f"cannot bind-mount here: {bound.stderr.strip()}")
        yield state
    finally:
        world.close()  # nothing of ours may keep the mounts busy
        for target in (state / "git", state):
            subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30)


def fill(folder: Path) -> Path:
    """A file that takes every free byte of ``folder``'s file system; its path."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as out:
        for size in (1 << 20, 4096, 512, 1):
            try:
                while out.write(b"\0" * size):
                    pass
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return filler


def healthz(world: World) -> tuple[int, dict[str, Any]]:
    code, body = world.running.request("GET", "/healthz")
    return code, json.loads(body)


def write_errors(world: World) -> float:
    text = world.metrics()
    return sum(
        world.metric("opsmap_state_write_errors_total", what=what)
        for what in ("journal", "audit", "meta", "cursor", "checks")
        if "opsmap_state_write_errors_total" in text
    )


def test_a_full_state_disk_keeps_the_loop_and_every_decision(make_world: WorldFactory) -> None:
    world = make_world("full")
    site = world.site
    batch = component("batch", [appending(site, "mark")])
    batch["checks"] = [command_check("alive", "true", interval=1, timeout=10)]
    files = {
        **world.base_files(),
        f"maps/{MAP}.yaml": map_yaml([batch]),
        "policies/trading.yaml": policy_yaml([SRE_ADMIN]),
    }
    world.clone.commit("batch map", author=SAM, files=files)
    applied = world.push()
    with small_state_dir(world) as state:
        world.start()
        world.wait_applied(applied)
        wait_for(lambda: world.audit_pending() == 0, what="first records pushed", timeout=WAIT_S)
        assert healthz(world)[0] == 200
        assert write_errors(world) == 0

        filler = fill(state)
        _, health = wait_for(
            lambda: (h := healthz(world))[0] == 503 and h,
            what=f"/healthz unhealthy once the state cannot be written\n{world.tail()}",
            timeout=WAIT_S,
        )
        assert "state writes failing" in health["reason"], health
        assert FULL in health["reason"], health
        assert write_errors(world) > 0

        # A request merged now must not start: its journal row cannot be written.
        path, merge = world.request_pr("mark-1", "batch", "mark", author=SAM, merger=TINA)
        world.push()
        status = wait_for(
            lambda: (s := world.running.status())["requests_pending"] and s,
            what=f"the request shown waiting\n{world.tail()}",
            timeout=WAIT_S,
        )
        [waiting] = status["requests_pending"]
        assert waiting["request"] == path
        assert waiting["commit"] == merge
        assert waiting["step"] == "start"
        assert FULL in waiting["reason"]
        assert "waits" in world.running.stderr()
        assert world.journal(path) is None
        assert site.lines("mark.log") == []
        # Checks keep running meanwhile, and the counter keeps rising with each retry.
        first = find_check(world.running.status(), "batch", "alive", map_name=MAP)
        assert first is not None
        errors = write_errors(world)
        wait_for(
            lambda: (
                (c := find_check(world.running.status(), "batch", "alive", map_name=MAP))
                and c["last_run"] > first["last_run"]
            ),
            what="the check run again while the state is full",
            timeout=WAIT_S,
        )
        wait_for(lambda: write_errors(world) > errors, what="more failures", timeout=WAIT_S)
        assert world.journal(path) is None
        assert site.lines("mark.log") == []

        filler.unlink()  # space returns: no restart
        assert world.wait_request(path)["state"] == "succeeded"
        wait_for(
            lambda: healthz(world)[0] == 200,
            what=f"/healthz healthy again\n{world.tail()}",
            timeout=WAIT_S,
        )
        wait_for(
            lambda: world.audit_pending() == 0,
            what=f"every record stored and pushed\n{world.tail()}",
            timeout=WAIT_S,
        )
        status = world.running.status()
        assert status["requests_pending"] == []
        assert status["audit_unstored"] == 0
        assert site.lines("mark.log") == ["mark"], "the request ran exactly once"
        assert world.journal_paths() == [path]

        outbox = world.outbox()
        notes = world.notes()
        assert notes is not None
        ids = [r["id"] for r in notes]
        assert len(ids) == len(set(ids)), "a record was delivered twice"
        assert sorted(ids) == sorted(r["id"] for r in outbox), "records lost or invented"
        assert [r["seq"] for r in outbox] == list(range(1, len(outbox) + 1))
        about = [r["action"] for r in outbox if r["target"].get("request") == path]
        assert about == ["request.authorized", "action.started", "action.succeeded"]
        verified = world.audit_cli("verify")
        assert verified.returncode == 0, verified.stderr
        assert world.stop() == 0
