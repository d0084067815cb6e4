"""Who asked and who approved, from a merge's history: the pure rules, on hand-made histories.

The git side (the log these histories come from) is tested against real repos and real
SSH signatures in ``tests/requests_e2e/test_requests_e2e_signed.py`` and
``test_gitsource_history.py``.
"""

from __future__ import annotations

import base64
import shutil
import struct
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.git.attribution import MergedHistory, attribute
from reconciler.git.changes import (
    DELETED,
    AllowedSigner,
    Change,
    Signature,
    Touch,
    parse_changes,
)
from reconciler.git.history import Commit, Person
from reconciler.model.common import CommitSha

ERIN = Person("Erin Dev", "erin@example.com")
FRANK = Person("Frank Dev", "frank@example.com")
SAM = Person("Sam SRE", "sam@example.com")
MALLORY = Person("Mallory", "mallory@example.com")


def public_key(seed: int) -> str:
    """An ed25519 public key in OpenSSH's format (its 32 bytes made up, its shape real)."""
    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + bytes([seed]) * 32
    return f"ssh-ed25519 {base64.b64encode(blob).decode()}"


KEYS = {ERIN.email: public_key(1), FRANK.email: public_key(2), SAM.email: public_key(3)}
SIGNERS = [AllowedSigner(identity, key) for identity, key in KEYS.items()]
PATH = "requests/r.yaml"
BASE = CommitSha("b" * 40)


def sha(n: int) -> CommitSha:
    return CommitSha(f"{n:040x}")


def signed_by(person: Person) -> Signature:
    fingerprint = AllowedSigner(person.email, KEYS[person.email]).fingerprint
    assert fingerprint is not None
    return Signature("G", person.email, fingerprint)


UNSIGNED = Signature("N")


def commit(
    n: int, parents: list[CommitSha], author: Person, committer: Person | None = None
) -> Commit:
    when = datetime(2026, 11, 22, tzinfo=UTC)
    return Commit(sha(n), tuple(parents), author, committer or author, when, when, f"c{n}")


def change(
    n: int, parents: list[CommitSha], signature: Signature, touch: Touch | None = None
) -> Change:
    return Change(sha(n), tuple(parents), signature, {PATH: touch} if touch else {})


def history(merge: Commit, changes: list[Change], people: list[Commit], blob: str) -> MergedHistory:
    return MergedHistory(merge, tuple(changes), {PATH: blob}, {c.sha: c for c in [*people, merge]})


def pr(
    edits: list[tuple[Person, Signature, str]],
    *,
    merger: Person = SAM,
    merge_signature: Signature | None = None,
    merge_writes: str | None = None,
) -> MergedHistory:
    """A PR of one commit per edit (the first adds PATH), merged by ``merger``."""
    people, changes = [], []
    parent = BASE
    for n, (person, signature, blob) in enumerate(edits, start=1):
        people.append(commit(n, [parent], person))
        changes.append(change(n, [parent], signature, Touch("A" if n == 1 else "M", blob)))
        parent = sha(n)
    merge = commit(99, [BASE, parent], merger)
    touch = Touch("AM", merge_writes) if merge_writes else None
    merge_change = change(99, [BASE, parent], merge_signature or signed_by(merger), touch)
    final = merge_writes or edits[-1][2]
    return history(merge, [merge_change, *reversed(changes)], people, final)


def test_without_signing_identities_are_the_commits_claims() -> None:
    h = pr([(ERIN, UNSIGNED, "1" * 40), (MALLORY, UNSIGNED, "2" * 40)], merge_signature=UNSIGNED)

    people = attribute(h, PATH, signers=None)

    assert people.problem is None
    assert people.requester is not None
    assert people.approver is not None
    assert (people.requester.identity, people.requester.commit) == (ERIN.email, sha(1))
    assert people.approver.identity == SAM.email
    assert not people.verified
    record = people.to_json()
    assert record["verified"] is False
    assert record["requester"]["committer"] == "Erin Dev <erin@example.com>"
    assert record["requester"]["verified"] is False


def test_signed_all_the_way_the_requester_is_the_signer() -> None:
    h = pr([(ERIN, signed_by(ERIN), "1" * 40)])

    people = attribute(h, PATH, signers=SIGNERS)

    assert people.problem is None
    assert people.verified
    assert people.requester is not None
    assert people.approver is not None
    assert people.requester.identity == ERIN.email
    assert people.requester.key == signed_by(ERIN).key
    assert people.approver.identity == SAM.email
    assert people.to_json()["requester"]["signer"] == ERIN.email


def test_an_unsigned_rewrite_of_a_signed_request_is_named() -> None:
    h = pr([(ERIN, signed_by(ERIN), "1" * 40), (MALLORY, UNSIGNED, "2" * 40)])

    people = attribute(h, PATH, signers=SIGNERS)

    assert people.problem is not None
    assert f"commit {sha(2)[:12]} changed {PATH} and is not signed" in people.problem
    assert people.problem.startswith("require_signed_commits: ")
    assert people.requester is not None
    assert not people.requester.verified


def test_the_last_of_two_allowed_signers_is_the_requester() -> None:
    h = pr([(ERIN, signed_by(ERIN), "1" * 40), (FRANK, signed_by(FRANK), "2" * 40)])

    people = attribute(h, PATH, signers=SIGNERS)

    assert people.problem is None
    assert people.requester is not None
    assert people.requester.identity == FRANK.email


def test_an_evil_merge_is_the_writer_and_must_be_signed() -> None:
    edits = [(ERIN, signed_by(ERIN), "1" * 40)]
    unsigned = attribute(
        pr(edits, merge_signature=UNSIGNED, merge_writes="9" * 40), PATH, signers=SIGNERS
    )
    signed = attribute(pr(edits, merge_writes="9" * 40), PATH, signers=SIGNERS)

    assert unsigned.problem is not None
    assert f"commit {sha(99)[:12]} changed {PATH} and is not signed" in unsigned.problem
    assert signed.problem is None
    assert signed.requester is not None
    assert signed.requester.identity == SAM.email
    assert signed.requester.commit == sha(99)


def test_an_unsigned_merge_has_no_approver() -> None:
    people = attribute(
        pr([(ERIN, signed_by(ERIN), "1" * 40)], merge_signature=UNSIGNED), PATH, signers=SIGNERS
    )

    assert people.problem is not None
    assert f"merge commit {sha(99)[:12]} is not signed" in people.problem


def test_an_overridden_unsigned_change_on_a_side_branch_still_denies() -> None:
    """Side 2 (unsigned) changed the file; the inner merge 3 kept side 1's content."""
    base_add = commit(1, [BASE], ERIN)
    side = commit(2, [sha(1)], MALLORY)
    inner = commit(3, [sha(1), sha(2)], ERIN)
    merge = commit(99, [BASE, sha(3)], SAM)
    changes = [
        change(99, [BASE, sha(3)], signed_by(SAM)),
        change(2, [sha(1)], UNSIGNED, Touch("M", "2" * 40)),
        change(1, [BASE], signed_by(ERIN), Touch("A", "1" * 40)),
    ]
    people = attribute(
        history(merge, changes, [base_add, side, inner], "1" * 40), PATH, signers=SIGNERS
    )

    assert people.problem is not None
    assert sha(2)[:12] in people.problem


def test_a_good_signature_must_be_by_the_listed_key_of_the_person_the_commit_names() -> None:
    other_key = Signature("G", ERIN.email, signed_by(FRANK).key)
    wrong_key = attribute(pr([(ERIN, other_key, "1" * 40)]), PATH, signers=SIGNERS)
    frank_signs_erins = attribute(pr([(ERIN, signed_by(FRANK), "1" * 40)]), PATH, signers=SIGNERS)
    not_listed = attribute(
        pr([(ERIN, Signature("U", "", "SHA256:x"), "1" * 40)]), PATH, signers=SIGNERS
    )
    bad = attribute(pr([(ERIN, Signature("B", ERIN.email, "k"), "1" * 40)]), PATH, signers=SIGNERS)

    assert wrong_key.problem is not None
    assert "does not list for erin@example.com" in wrong_key.problem
    assert frank_signs_erins.problem is not None
    assert (
        "signed by frank@example.com but names author erin@example.com" in frank_signs_erins.problem
    )
    assert not_listed.problem is not None
    assert "no signer in policies/" in not_listed.problem
    assert bad.problem is not None
    assert "bad signature" in bad.problem


def test_content_from_before_the_first_parent_has_no_signer() -> None:
    """The PR's branch left the file as an old commit (before base) had written it."""
    merge = commit(99, [BASE, sha(1)], SAM)
    h = history(merge, [change(99, [BASE, sha(1)], signed_by(SAM))], [], "7" * 40)

    people = attribute(h, PATH, signers=SIGNERS)

    assert people.problem is not None
    assert "older than the merge's first parent" in people.problem


def test_a_deletion_is_a_change_too() -> None:
    h = pr(
        [
            (ERIN, signed_by(ERIN), "1" * 40),
            (MALLORY, UNSIGNED, DELETED),
            (ERIN, signed_by(ERIN), "1" * 40),
        ]
    )

    people = attribute(h, PATH, signers=SIGNERS)

    assert people.problem is not None
    assert sha(2)[:12] in people.problem


def test_identities_that_would_be_patterns_never_become_allowed_signers() -> None:
    key = KEYS[ERIN.email]
    assert AllowedSigner(ERIN.email, key).usable
    for identity in ("*@example.com", "a,erin@example.com", 'x"@y', "erin@example.com\n"):
        assert not AllowedSigner(identity, key).usable, identity
    assert not AllowedSigner(ERIN.email, key + "\nssh-ed25519 AAAA").usable
    assert not AllowedSigner(ERIN.email, "0xDEADBEEF").usable


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen is not installed")
def test_fingerprints_are_ssh_keygens(tmp_path: Path) -> None:
    key = tmp_path / "k"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=60
    )
    public = key.with_suffix(".pub").read_text()
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(key.with_suffix(".pub"))],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.split()[1]  # fmt: skip

    assert AllowedSigner("k@example.com", public).fingerprint == listed


def test_parse_changes_reads_combined_and_plain_lines() -> None:
    a, b, m = "a" * 40, "c" * 40, "e" * 40
    out = (
        f"{m}\0{BASE} {sha(1)}\0G\0sam@example.com\0SHA256:abc\0"
        f"\n::000000 100644 100644 {'0' * 40} {a} {b} AM\0{PATH}\0"
        f"{sha(1)}\0{BASE}\0N\0\0\0"
        f"\n:000000 100644 {'0' * 40} {a} A\0{PATH}\0"
        f":100644 000000 {a} {'0' * 40} D\0requests/gone.yaml\0"
    ).encode()

    merge, first = parse_changes(out)

    assert merge.signature == Signature("G", "sam@example.com", "SHA256:abc")
    assert merge.files == {PATH: Touch("AM", b)}
    assert merge.is_merge
    assert not first.is_merge
    assert first.files == {PATH: Touch("A", a), "requests/gone.yaml": Touch("D", DELETED)}


@pytest.mark.parametrize(
    "out",
    [
        b":000000 100644 x y A\0requests/r.yaml\0",
        b"not-a-sha\0\0N\0\0\0",
        ("a" * 40 + "\0\0NN\0\0\0").encode(),
        ("a" * 40 + "\0\0N\0\0\0:garbage\0p\0").encode(),
        ("a" * 40 + "\0\0N").encode(),
    ],
)
def test_parse_changes_refuses_what_is_not_its_shape(out: bytes) -> None:
    with pytest.raises(ValueError, match="git log"):
        parse_changes(out)
