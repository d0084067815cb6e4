"""Files an inventory names, and ``mask:`` patterns: refused at their file:line by the CLI.

``known_hosts`` must be a regular file of the repo (no absolute path, ``..``, folder,
symlink, oversize file); ``identity_file`` a name in the operator's key directory or a
default key. Nothing of the file a bad path points at shows in the output.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from validate_support import Repo, run_cli

SENTINEL = "root:SENTINEL-PASSWD-LINE:0:0:root:/root:/bin/sh"
INVENTORY = "inventory/hosts.yaml"


def inventory(repo: Repo, **fields: str) -> None:
    lines = "".join(f"    {key}: {value!r}\n" for key, value in fields.items())
    repo.write(INVENTORY, f"hosts:\n  - name: web-01\n{lines}")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A /etc/passwd-like file outside the repo."""
    path = tmp_path / "passwd"
    path.write_text(SENTINEL + "\n")
    return path


def test_a_known_hosts_file_of_the_repo_is_valid(repo: Repo) -> None:
    repo.write("inventory/known_hosts", "[10.0.0.1]:22 ssh-ed25519 AAAAC3Nza\n")
    inventory(repo, known_hosts="inventory/known_hosts", identity_file="deploy_ed25519")
    outcome = repo.validate()
    assert outcome.code == 0, outcome.describe()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("../../x", "contains '..'"),
        ("inventory/../../x", "contains '..'"),
        ("~/.ssh/known_hosts", "starts with '~'"),
    ],
)
def test_known_hosts_that_leaves_the_repo_is_an_error(repo: Repo, value: str, reason: str) -> None:
    inventory(repo, known_hosts=value)
    outcome = repo.validate()
    finding = outcome.one("unsafe-known-hosts")
    repo.assert_at(finding, INVENTORY, "known_hosts")
    assert reason in finding["message"]
    assert outcome.code == 1


def test_an_absolute_known_hosts_is_an_error_that_shows_nothing_of_the_file(
    repo: Repo, outside: Path
) -> None:
    inventory(repo, known_hosts=str(outside))
    outcome = repo.validate()
    finding = outcome.one("unsafe-known-hosts")
    repo.assert_at(finding, INVENTORY, "known_hosts")
    assert "absolute path" in finding["message"]
    assert "SENTINEL" not in outcome.describe() + outcome.stderr


def test_a_folder_as_known_hosts_is_an_error(repo: Repo) -> None:
    (repo.root / "inventory" / "keys").mkdir(parents=True)
    inventory(repo, known_hosts="inventory/keys")
    finding = repo.validate().one("unsafe-known-hosts")
    assert "not a regular file" in finding["message"]
    repo.assert_at(finding, INVENTORY, "known_hosts")


def test_a_symlink_as_known_hosts_is_an_error_never_followed(repo: Repo, outside: Path) -> None:
    (repo.root / "inventory").mkdir()
    os.symlink(outside, repo.root / "inventory" / "known_hosts")
    inventory(repo, known_hosts="inventory/known_hosts")
    outcome = repo.validate()
    finding = outcome.one("unsafe-known-hosts")
    assert "symlink" in finding["message"]
    assert "SENTINEL" not in outcome.describe() + outcome.stderr


def test_a_symlinked_folder_on_the_way_is_an_error(repo: Repo, outside: Path) -> None:
    os.symlink(outside.parent, repo.root / "elsewhere")
    inventory(repo, known_hosts=f"elsewhere/{outside.name}")
    finding = repo.validate().one("unsafe-known-hosts")
    assert "symlink" in finding["message"]


def test_an_oversize_known_hosts_is_an_error(repo: Repo) -> None:
    (repo.root / "inventory").mkdir()
    (repo.root / "inventory" / "known_hosts").write_bytes(b"#" * (1024 * 1024 + 1))
    inventory(repo, known_hosts="inventory/known_hosts")
    finding = repo.validate().one("unsafe-known-hosts")
    assert "over the 1048576-byte limit" in finding["message"]


def test_a_missing_known_hosts_is_an_error(repo: Repo) -> None:
    inventory(repo, known_hosts="inventory/nowhere")
    assert "not a file of the repo" in repo.validate().one("unsafe-known-hosts")["message"]


@pytest.mark.parametrize("value", ["/dev/zero", "/root/.ssh/id_ed25519", "../keys/k", "~/k"])
def test_an_identity_file_outside_the_key_dir_is_an_error(repo: Repo, value: str) -> None:
    inventory(repo, identity_file=value)
    outcome = repo.validate()
    finding = outcome.one("unsafe-identity-file")
    repo.assert_at(finding, INVENTORY, "identity_file")
    assert "--ssh-key-dir" in finding["message"]


@pytest.mark.parametrize("value", ["~/.ssh/id_ed25519", "id_rsa", "team/deploy_key"])
def test_a_default_key_or_a_name_in_the_key_dir_is_valid(repo: Repo, value: str) -> None:
    inventory(repo, identity_file=value)
    outcome = repo.validate()
    assert outcome.code == 0, outcome.describe()


def test_defaults_are_checked_too(repo: Repo) -> None:
    repo.write(INVENTORY, "defaults:\n  known_hosts: /etc/ssh/ssh_known_hosts\nhosts: []\n")
    finding = repo.validate().one("unsafe-known-hosts")
    repo.assert_at(finding, INVENTORY, "known_hosts")


def test_plain_text_output_names_the_place_and_the_rule(repo: Repo, outside: Path) -> None:
    inventory(repo, known_hosts=str(outside))
    done = run_cli("validate", ".", cwd=repo.root)
    assert done.returncode == 1
    assert f"{INVENTORY}:3:5: error: known_hosts" in done.stdout, done.stdout
    assert "[unsafe-known-hosts]" in done.stdout
    assert "SENTINEL" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


# -- mask: -----------------------------------------------------------------------------


def test_mask_patterns_that_are_safe_are_valid(repo: Repo) -> None:
    repo.write(
        "opsmap.yaml",
        r"""
        mask:
          - 'token=\S++'
          - '(?i)password\s*+[:=]\s*+\S++'
          - 'AKIA[0-9A-Z]{16}'
        """,
    )
    outcome = repo.validate()
    assert outcome.code == 0, outcome.describe()


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("[unclosed", "not a regular expression"),
        ("(a+)+$", "possessive"),
        ("token=.*", "possessive"),
        (r"(\w)\1", "backreferences"),
        ("(?=secret)secret", "lookahead"),
        ("x|", "empty text"),
        ("(ab|ba)(cd|dc)(ef|fe)(gh|hg)(ij|ji)(kl|lk)(mn|nm)", "multiply"),
        ("(?:a|aa){30}b", "multiply"),  # 2**30 ways: minutes on 60 a's, lock held
        ("(?:ab|a){7}", "multiply"),
        ("a" * 201, "at most 200"),
    ],
)
def test_a_mask_pattern_that_could_hang_or_does_not_compile_is_an_error(
    repo: Repo, pattern: str, reason: str
) -> None:
    repo.write("opsmap.yaml", f"mask:\n  - ok=\\S++\n  - '{pattern}'\n")
    outcome = repo.validate()
    [finding] = outcome.errors
    assert (finding["file"], finding["line"]) == ("opsmap.yaml", 3), outcome.describe()
    assert reason in finding["message"], finding["message"]


def test_more_than_sixteen_mask_patterns_is_an_error(repo: Repo) -> None:
    repo.write("opsmap.yaml", "mask:\n" + "".join(f"  - 'k{i}=\\S++'\n" for i in range(17)))
    outcome = repo.validate()
    assert outcome.code == 1
    assert outcome.errors[0]["file"] == "opsmap.yaml"
