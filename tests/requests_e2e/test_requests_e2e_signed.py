"""``require_signed_commits``: identities come only from verified SSH commit signatures.

Keys are made with ``ssh-keygen`` in the test's tmp dir; their public halves are the
allowed signers in ``policies/``. Commits are signed with
``git -c gpg.format=ssh -c user.signingkey=KEY commit -S`` (and ``merge -S``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from requests_e2e_support import (
    ERIN,
    MAP,
    SAM,
    World,
    WorldFactory,
    appending,
    batch_files,
    request_yaml,
    settings_yaml,
    signing_git,
)

from reconciler.gitsource import Person

pytestmark = [pytest.mark.sshd, pytest.mark.slow]


def keypair(where: Path, name: str) -> Path:
    key = where / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return key


def public(key: Path) -> str:
    return key.with_suffix(".pub").read_text().strip()


def signed_request(
    world: World,
    name: str,
    *,
    author: Person,
    author_key: Path,
    merger: Person,
    merger_key: Path | None,
) -> tuple[str, str]:
    """A PR adding a request to run ``batch/mark``, its commit signed with ``author_key``,
    merged (``--no-ff``) with a merge signed with ``merger_key`` (unsigned if None)."""
    clone = world.clone
    path, branch = f"requests/{name}.yaml", f"pr-{name}"
    clone.switch(branch, create_from="main")
    clone.write({path: request_yaml("batch", "mark")})
    signing_git(clone, author_key, "add", "--all", author=author)
    signing_git(clone, author_key, "commit", "--quiet", "-S", "-m", name, author=author)
    if merger_key is None:
        return path, clone.merge(branch, by=merger)
    clone.switch("main")
    signing_git(
        clone, merger_key, "merge", "--quiet", "--no-ff", "-S", "-m", f"merge {name}", branch,
        author=merger,
    )  # fmt: skip
    return path, clone.head()


def test_only_verified_signatures_identify_people(make_world: WorldFactory, tmp_path: Path) -> None:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed: SSH commit signatures cannot be made here")
    sam_key, erin_key = keypair(tmp_path, "sam"), keypair(tmp_path, "erin")
    world = make_world("signed")
    site = world.site
    developers_mark = {
        "group": "developers",
        "role": "viewer",
        "maps": [MAP],
        "overrides": {"actions": {"batch": {"mark": "allow"}}},
    }
    files = batch_files(
        world,
        [appending(site, "mark")],
        bindings=[developers_mark],
        signers=[
            {"identity": SAM.email, "key": public(sam_key)},
            {"identity": ERIN.email, "key": public(erin_key)},
        ],
        require_signed_commits=True,
    )
    world.clone.commit("signed map repo", author=SAM, files=files)
    world.start()
    world.wait_applied(world.push())

    good = signed_request(
        world, "signed", author=ERIN, author_key=erin_key, merger=SAM, merger_key=sam_key
    )
    unsigned_merge = signed_request(
        world, "unsigned-merge", author=ERIN, author_key=erin_key, merger=SAM, merger_key=None
    )
    wrong_key = signed_request(
        world, "erin-by-sams-key", author=ERIN, author_key=sam_key, merger=SAM, merger_key=sam_key
    )
    # An unsigned PR that turns the requirement off and asks in the same PR: judged before.
    switch_off = world.request_pr(
        "unsigned-switch-off",
        "batch",
        "mark",
        author=ERIN,
        merger=SAM,
        extra={"opsmap.yaml": settings_yaml(require_signed_commits=False)},
    )
    world.push()
    prs = (good, unsigned_merge, wrong_key, switch_off)
    done = {path: world.wait_request(path) for path, _ in prs}

    assert done[good[0]]["state"] == "succeeded", done
    assert done[good[0]]["requester"] == ERIN.email
    assert done[good[0]]["approver"] == SAM.email
    for path in (unsigned_merge[0], wrong_key[0], switch_off[0]):
        assert done[path]["state"] == "denied", done
        assert "signed" in done[path]["rule"], done
    assert site.lines("mark.log") == ["mark"]
    notes = world.wait_notes(unsigned_merge[1], ["request.denied"])
    [denied] = [r for r in notes if r["action"] == "request.denied"]
    assert "require_signed_commits" in denied["details"]["rule"]
