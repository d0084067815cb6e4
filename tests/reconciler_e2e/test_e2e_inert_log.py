"""A real ``opsmap run``: a pushed file name cannot forge a log line or drive the terminal.

The rejected revision's findings are logged with the file's name; the name holds a
newline followed by a fake log record, and ESC/OSC sequences.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from e2e_support import Opsmap, component, repo_files
from e2e_support import wait_for as wait
from gitrepos import ALICE, BareRepo, Clone

FORGED = "2026-01-01T00:00:00.000Z ERROR reconciler: REVISION 0000 APPLIED by admin"
NAME = f"maps/x\n{FORGED}\x1b[2K\x1b]8;;e.example\x07.yaml"
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def test_a_hostile_file_name_is_one_inert_log_line(
    remote: BareRepo, clone: Clone, opsmap: Callable[..., Opsmap]
) -> None:
    first = clone.commit("good", author=ALICE, files=repo_files([component("a", [])]))
    clone.push()
    service = opsmap(remote.file_url, poll_interval=0.2)
    service.wait_applied(first)
    bad = clone.commit("bad", author=ALICE, files={NAME: "name: x\nnot_a_key: 1\n"})
    clone.push()
    wait(
        lambda: (
            f"REVISION {bad[:12]} REJECTED" in service.stderr() and "not_a_key" in service.stderr()
        ),
        what="the rejection and its finding in the log",
    )
    log = service.stderr()
    assert not RAW_CONTROL.search(log)
    assert not any(line.startswith(FORGED) for line in log.splitlines())
    finding = next(line for line in log.splitlines() if "not_a_key" in line)
    assert "maps/x\\x0a2026-01-01" in finding
    assert "\\x1b[2K\\x1b]8;;e.example\\x07.yaml" in finding
