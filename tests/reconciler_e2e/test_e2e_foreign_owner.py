"""``opsmap run`` as root follows a local repo that belongs to ``nobody`` (as a service
user follows a checkout that a deploy user owns), and pushes its audit notes there: git's
"dubious ownership" stops neither."""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_support import Opsmap, command_check, component, repo_files, wait_for
from gitrepos import ALICE, Clone

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a repo away")


def test_a_repo_of_another_user_is_followed_and_its_revision_applied(
    clone: Clone, opsmap: Callable[..., Opsmap], tmp_path: Path
) -> None:
    head = clone.commit(
        "first", author=ALICE, files=repo_files([component("a", [command_check("one", "true")])])
    )
    nobody = pwd.getpwnam("nobody").pw_uid
    for root, dirs, files in os.walk(clone.path):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(root, name), nobody, -1)
    os.lchown(clone.path, nobody, -1)

    service = opsmap(str(clone.path), poll_interval=3600)

    service.wait_applied(head)
    service.wait_check("a", "one", "OK")
    # the audit notes reach that repo too (a push, and a fetch when they moved)
    notes = clone.path / ".git" / "refs" / "notes" / "opsmap"
    wait_for(notes.is_file, what=f"audit notes pushed to {clone.path}\n{service.tail()}")
    assert "dubious ownership" not in service.stderr()
