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
from gitrepos import Clone
from requests_e2e_support import (
    BOB_EXTERNAL,
    ERIN,
    FRANK,
    MAP,
    SAM,
    World,
    WorldFactory,
    appending,
    batch_files,
    one,
    request_yaml,
    settings_yaml,
    signing_git,
)

from reconciler.git.mirror import Person

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
    shown = world.status_request(good[0])  # /api/v1/status: both are verified signers
    assert shown["verified"] is True
    assert shown["requester_verified"] is True
    assert shown["approver_verified"] is True
    for path in (unsigned_merge[0], wrong_key[0], switch_off[0]):
        assert done[path]["state"] == "denied", done
        assert "signed" in done[path]["rule"], done
        assert world.status_request(path)["verified"] is False
    assert site.lines("mark.log") == ["mark"]
    notes = world.wait_notes(unsigned_merge[1], ["request.denied"])
    [denied] = [r for r in notes if r["action"] == "request.denied"]
    assert "require_signed_commits" in denied["details"]["rule"]


def fingerprint(key: Path) -> str:
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(key.with_suffix(".pub"))],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return listed.stdout.split()[1]


def signed_commit(clone: Clone, key: Path, author: Person, files: dict[str, str]) -> str:
    clone.write(files)
    signing_git(clone, key, "add", "--all", author=author)
    signing_git(clone, key, "commit", "--quiet", "-S", "-m", "signed change", author=author)
    return clone.head()


def signed_merge(
    clone: Clone, key: Path, merger: Person, branch: str, files: dict[str, str] | None = None
) -> str:
    """``branch`` merged into main ``--no-ff``, signed; ``files`` written into the merge."""
    clone.switch("main")
    signing_git(clone, key, "merge", "--quiet", "--no-ff", "--no-commit", branch, author=merger)
    clone.write(files or {})
    signing_git(clone, key, "add", "--all", author=merger)
    signing_git(clone, key, "commit", "--quiet", "-S", "-m", f"merge {branch}", author=merger)
    return clone.head()


def test_every_change_to_a_request_must_be_signed(make_world: WorldFactory, tmp_path: Path) -> None:
    """The requester is whoever signed the content that is merged; an unsigned hand anywhere
    between the merge's first parent and the merge denies the request, named."""
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed: SSH commit signatures cannot be made here")
    sam_key, erin_key, frank_key = (keypair(tmp_path, n) for n in ("sam", "erin", "frank"))
    world = make_world("signed-changes")
    site, clone = world.site, world.clone
    developers = {
        "group": "developers",
        "role": "viewer",
        "maps": [MAP],
        "overrides": {"actions": {"batch": {"mark": "allow", "wipe": "allow"}}},
    }
    files = batch_files(
        world,
        [appending(site, "mark"), appending(site, "wipe")],
        bindings=[developers],
        signers=[
            {"identity": person.email, "key": public(key)}
            for person, key in ((SAM, sam_key), (ERIN, erin_key), (FRANK, frank_key))
        ],
        require_signed_commits=True,
    )
    clone.commit("signed map repo", author=SAM, files=files)
    world.start()
    world.wait_applied(world.push())
    mark, wipe = request_yaml("batch", "mark"), request_yaml("batch", "wipe")

    # Erin asks (signed) to mark; Bob, unsigned, turns it into a wipe; Sam signs the merge.
    rewritten = "requests/rewritten.yaml"
    clone.switch("pr-rewritten", create_from="main")
    signed_commit(clone, erin_key, ERIN, {rewritten: mark})
    sneaked = clone.commit("tweak", author=BOB_EXTERNAL, files={rewritten: wipe})
    signed_merge(clone, sam_key, SAM, "pr-rewritten")

    # Erin adds, Frank edits, both signed: the content merged is Frank's, so Frank asks.
    edited = "requests/edited.yaml"
    clone.switch("pr-edited", create_from="main")
    signed_commit(clone, erin_key, ERIN, {edited: request_yaml("batch", "mark", reason="erin")})
    signed_commit(clone, frank_key, FRANK, {edited: request_yaml("batch", "mark", reason="frank")})
    edited_merge = signed_merge(clone, sam_key, SAM, "pr-edited")

    # Erin asks to mark; the merge commit itself, unsigned, makes it a wipe.
    evil = "requests/evil.yaml"
    clone.switch("pr-evil", create_from="main")
    signed_commit(clone, erin_key, ERIN, {evil: mark})
    evil_merge = clone.merge("pr-evil", by=SAM, files={evil: wipe})

    # The same with the merge signed by Sam: the content is Sam's, so Sam asks.
    owned = "requests/owned.yaml"
    clone.switch("pr-owned", create_from="main")
    signed_commit(clone, erin_key, ERIN, {owned: mark})
    signed_merge(clone, sam_key, SAM, "pr-owned", files={owned: wipe})
    world.push()
    done = {path: world.wait_request(path) for path in (rewritten, edited, evil, owned)}

    assert done[rewritten]["state"] == "denied", done
    assert (
        f"require_signed_commits: commit {sneaked[:12]} changed {rewritten} and is not signed"
        in done[rewritten]["rule"]
    ), done
    assert done[evil]["state"] == "denied", done
    assert f"commit {evil_merge[:12]} changed {evil} and is not signed" in done[evil]["rule"]
    assert done[edited]["state"] == "succeeded", done
    assert (done[edited]["requester"], done[edited]["approver"]) == (FRANK.email, SAM.email)
    assert done[owned]["state"] == "succeeded", done
    assert done[owned]["requester"] == SAM.email
    assert site.lines("mark.log") == ["mark"]
    assert site.lines("wipe.log") == ["wipe"]

    records = world.records(edited)
    assert [r["action"] for r in records] == [
        "request.authorized", "action.started", "action.succeeded",
    ]  # fmt: skip
    for record in records:
        identity = record["details"]["identity"]
        assert identity["verified"] is True
        assert identity["requester"]["signer"] == FRANK.email
        assert identity["requester"]["key"] == fingerprint(frank_key)
        assert identity["approver"]["commit"] == edited_merge
        assert identity["approver"]["key"] == fingerprint(sam_key)
    denied = one(world.records(rewritten), "request.denied")
    assert denied["details"]["identity"]["verified"] is False
    world.wait_notes(edited_merge, ["request.authorized", "action.succeeded"])
    listed = world.audit_cli("--commit", edited_merge)
    assert listed.returncode == 0, listed.stderr
    [authorized] = [line for line in listed.stdout.splitlines() if "request.authorized" in line]
    assert FRANK.email in authorized
    assert "unverified" not in authorized
