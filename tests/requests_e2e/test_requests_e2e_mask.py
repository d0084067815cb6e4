"""``mask:`` through a real request: an action's output excerpt is masked in the journal,
the audit outbox and the git notes pushed to the remote; the digest is of the raw output.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from requests_e2e_support import SAM, TINA, WorldFactory, batch_files, one

pytestmark = [pytest.mark.sshd, pytest.mark.slow]

# The command computes the secrets (lower-cased), so its own text in the plan holds none.
TOKEN = "leakedtoken"
PASSWORD = "hunterleaked"
OUTPUT = f"login ok token={TOKEN} rest\n"
ERRORS = f"Password: {PASSWORD}\n"
COMMAND = (
    'echo "login ok token=$(echo LEAKEDTOKEN | tr A-Z a-z) rest"; '
    'echo "Password: $(echo HUNTERLEAKED | tr A-Z a-z)" >&2'
)


def test_mask_hides_a_pattern_in_every_audit_record_and_the_journal(
    make_world: WorldFactory,
) -> None:
    world = make_world("mask")
    leaky = {"name": "leak", "command": COMMAND}
    masks = [r"token=\S++", r"(?i)password\s*+[:=]\s*+\S++"]
    world.clone.commit("batch map", author=SAM, files=batch_files(world, [leaky], mask=masks))
    world.start()
    world.wait_applied(world.push())

    path, merge = world.request_pr("leak", "batch", "leak", author=SAM, merger=TINA)
    world.push()
    assert world.wait_request(path)["state"] == "succeeded"
    notes = world.wait_notes(merge, ["request.authorized", "action.started", "action.succeeded"])
    [host] = one(notes, "action.succeeded")["details"]["hosts"]
    assert host["output_excerpt"] == "login ok *** rest\n\n--- stderr ---\n***\n", host
    assert host["stdout_sha256"] == hashlib.sha256(OUTPUT.encode()).hexdigest()
    assert host["stderr_sha256"] == hashlib.sha256(ERRORS.encode()).hexdigest()

    everything = json.dumps(notes) + json.dumps(world.outbox())
    everything += json.dumps(world.query("SELECT * FROM requests"))
    for secret in (TOKEN, PASSWORD):
        assert secret not in everything
