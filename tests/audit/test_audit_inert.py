"""``opsmap audit`` shows records whose text came from a repo or a host: inert, one line each."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from audit_support import World, deliver

from reconciler.audit import AuditLog, NotesPublisher

PROJECT = Path(__file__).resolve().parents[2]
HOSTILE = "boom\x1b[31m\nforged line\x1b]8;;http://e.example\x07link\x1b]8;;\x07\x9b2J"
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def test_the_table_prints_hostile_reasons_and_targets_inert(
    world: World, log: AuditLog, publisher: NotesPublisher
) -> None:
    log.append(
        action="action.failed",
        actor=f"mallory{HOSTILE}@example.com",
        target={"map": "demo", "component": f"api{HOSTILE}", "action": "restart"},
        details={"reason": HOSTILE, "duration_s": 1},
        commit=world.second,
        revision=world.second,
    )
    log.append(
        action="revision.rejected",
        actor="opsmap",
        target={"revision": world.first},
        details={"errors": [f"maps/{HOSTILE}.yaml:1:1: bad"]},
        commit=world.first,
        revision=world.first,
    )
    deliver(log, publisher)
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "audit", "--repo", str(world.remote.path)],
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert not RAW_CONTROL.search(done.stdout + done.stderr)
    _header, *rows = done.stdout.splitlines()
    assert len(rows) == 2  # a newline in a record forges no row
    assert "boom\\x1b[31m forged line\\x1b]8;;http://e.example\\x07link" in rows[0]
