"""SIGTERM and kill -9 while audit records are being pushed: after a restart, every record
is on the remote exactly once and the chain verifies.

The remote's ``pre-receive`` hook holds every push of notes until the test opens a gate,
so the reconciler is stopped while its ``git push`` is in flight.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from e2e_support import wait_for
from requests_e2e_support import SAM, TINA, WAIT_S, World, WorldFactory, appending, batch_files

pytestmark = [pytest.mark.sshd, pytest.mark.slow]

HOOK = """\
#!/bin/sh
# Holds a push of notes until {gate} exists (at most two minutes); branches pass.
notes=
while read -r old new ref; do
    case "$ref" in refs/notes/*) notes=1 ;; esac
done
if [ -n "$notes" ] && [ ! -e '{gate}' ]; then
    echo held >>'{held}'
    i=0
    while [ ! -e '{gate}' ]; do
        i=$((i + 1)); [ "$i" -gt 1200 ] && exit 1
        sleep 0.1
    done
fi
exit 0
"""


def slow_remote(world: World) -> tuple[Path, Path]:
    """Install the hook; (the gate, the file each held push appends a line to)."""
    gate, held = world.root / "gate", world.root / "held"
    gate.touch()
    hook = world.remote.path / "hooks" / "pre-receive"
    hook.write_text(HOOK.format(gate=gate, held=held))
    hook.chmod(0o755)
    return gate, held


def delivered_once(world: World) -> None:
    """Every record of the outbox is on the remote once, in order; the chain verifies."""
    wait_for(
        lambda: world.audit_pending() == 0,
        what=f"every record pushed after the restart\n{world.tail()}",
        timeout=WAIT_S,
    )
    outbox = world.outbox()
    notes = world.notes()
    assert notes is not None
    ids = [r["id"] for r in notes]
    assert len(ids) == len(set(ids)), "a record was delivered twice"
    assert sorted(ids) == sorted(r["id"] for r in outbox), "records lost or invented"
    assert [r["seq"] for r in outbox] == list(range(1, len(outbox) + 1))
    verified = world.audit_cli("verify")
    assert verified.returncode == 0, verified.stderr


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_stopped_during_an_audit_push_delivers_every_record_once(
    make_world: WorldFactory, how: str
) -> None:
    world = make_world(f"push-{how}")
    gate, held = slow_remote(world)
    world.clone.commit(
        "batch map", author=SAM, files=batch_files(world, [appending(world.site, "mark")])
    )
    world.start()
    world.wait_applied(world.push())
    wait_for(lambda: world.audit_pending() == 0, what="first records pushed", timeout=WAIT_S)

    gate.unlink()  # from now on, a push of notes waits in the remote's hook
    path, _ = world.request_pr("mark-1", "batch", "mark", author=SAM, merger=TINA)
    world.push()
    assert world.wait_request(path)["state"] == "succeeded"
    wait_for(held.exists, what=f"a push of notes held by the hook\n{world.tail()}", timeout=WAIT_S)
    assert (world.audit_pending() or 0) > 0

    proc = world.running.proc
    if how == "sigkill":
        world.crash()  # the reconciler, its git push and the hook, at once
    else:
        os.kill(proc.pid, signal.SIGTERM)  # the reconciler only: its push is still held
        wait_for(
            lambda: "stopping" in world.running.stderr(),
            what="the reconciler stopping",
            timeout=WAIT_S,
        )
        gate.touch()  # the held push now goes through, after the loop let go of it
        assert proc.wait(timeout=WAIT_S) == 0, world.tail()
    gate.touch()

    world.start()
    delivered_once(world)
    assert world.site.lines("mark.log") == ["mark"], "the request ran exactly once"
    entry = world.journal(path)
    assert entry is not None
    assert entry["state"] == "succeeded"
    assert world.stop() == 0
