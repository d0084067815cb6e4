"""Signers in ``policies/`` that could verify no commit are reported, at their entry."""

from __future__ import annotations

import pytest
from validate_support import Repo

P = "policies/signers.yaml"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB"


def test_a_plain_email_and_one_ssh_key_are_a_usable_signer(repo: Repo) -> None:
    repo.write(P, f"signers:\n  - identity: erin@example.com\n    key: {KEY} erin@laptop\n")
    outcome = repo.validate()
    assert outcome.code == 0, outcome.describe()
    assert [f for f in outcome.warnings if f["code"] == "unusable-signer"] == []


@pytest.mark.parametrize(
    ("identity", "key", "words"),
    [
        ("'*@example.com'", KEY, "not a plain email"),
        ("'a,erin@example.com'", KEY, "not a plain email"),
        ("erin@example.com", "'ABCD1234ABCD1234'", "GPG keys are not supported"),
        ("erin@example.com", f'"{KEY}\\nssh-ed25519 AAAA"', "not one OpenSSH public key"),
    ],
)
def test_an_unusable_signer_is_a_warning_at_its_entry(
    repo: Repo, identity: str, key: str, words: str
) -> None:
    repo.write(P, f"signers:\n  - identity: {identity}\n    key: {key}\n")
    outcome = repo.validate()
    assert outcome.code == 0, outcome.describe()
    finding = outcome.one("unusable-signer", severity="warning")
    repo.assert_at(finding, P, "identity:")
    assert words in finding["message"]
