"""The seed map and the project's own example repo (issue 2, items 7 and "done when")."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from validate_support import PROJECT, SEED, Repo, run_cli

SEED_IN_REPO = "maps/trading-platform.yaml"

needs_seed = pytest.mark.skipif(
    not SEED.is_file(), reason=f"the shared reference map {SEED} is absent from this checkout"
)


def assert_only_zookeeper(outcome_findings: list[dict[str, object]], file: str) -> None:
    assert len(outcome_findings) == 1, outcome_findings
    (warning,) = outcome_findings
    assert warning["code"] == "external-dependency"
    assert warning["file"] == file
    assert "zookeeper" in str(warning["message"])
    assert "kafka" in str(warning["message"])
    # the `- zookeeper` item of kafka's dependencies in the seed
    assert (warning["line"], warning["column"]) == (242, 9)


@needs_seed
def test_seed_map_is_byte_identical_to_the_reference() -> None:
    assert (PROJECT / SEED_IN_REPO).read_bytes() == SEED.read_bytes()


def test_project_root_validates() -> None:
    result = run_cli("validate", ".", cwd=PROJECT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_seed_in_project_repo_has_exactly_the_zookeeper_warning(repo: Repo) -> None:
    """Validated against the whole project repo (its inventory, its policies)."""
    outcome = repo.validate(SEED_IN_REPO, cwd=PROJECT)
    assert outcome.code == 0, outcome.describe()
    assert outcome.errors == []
    assert_only_zookeeper(outcome.warnings, SEED_IN_REPO)


def test_seed_findings_in_whole_project_run(repo: Repo) -> None:
    """``opsmap validate .``: the seed's findings are the zookeeper warning, no more."""
    outcome = repo.validate(".", cwd=PROJECT)
    seed = [f for f in outcome.findings if f["file"] == SEED_IN_REPO]
    assert_only_zookeeper(seed, SEED_IN_REPO)


@needs_seed
def test_seed_as_a_standalone_file(repo: Repo, tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    shutil.copyfile(SEED, loose / "trading-platform.map.yaml")
    outcome = repo.validate("trading-platform.map.yaml", cwd=loose)
    assert outcome.code == 0, outcome.describe()
    assert outcome.errors == []
    assert_only_zookeeper(outcome.warnings, "trading-platform.map.yaml")


@needs_seed
def test_seed_as_the_only_map_of_a_repo(repo: Repo) -> None:
    (repo.root / "maps").mkdir()
    shutil.copyfile(SEED, repo.root / SEED_IN_REPO)
    outcome = repo.validate()
    assert outcome.code == 0, outcome.describe()
    assert_only_zookeeper(outcome.findings, SEED_IN_REPO)


@needs_seed
def test_seed_under_strict_fails_on_the_external_dependency(repo: Repo, tmp_path: Path) -> None:
    shutil.copyfile(SEED, tmp_path / "seed.yaml")
    outcome = repo.validate("--strict", "seed.yaml", cwd=tmp_path)
    assert outcome.code == 1
    assert outcome.warnings == []
    assert [e["code"] for e in outcome.errors] == ["external-dependency"]
