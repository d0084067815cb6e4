"""Golden plans: each folder of ``golden/`` is a case (``base/`` and ``head/`` repo files,
optionally ``author.txt`` for head's commit) with the expected ``expected.md`` and
``expected.json``. Adding a case means adding a folder; ``OPSMAP_UPDATE_GOLDEN=1``
rewrites the expected files from what the code now prints.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from plan_support import HEAD_AUTHOR, make_repo

from reconciler.cli import main
from reconciler.plan.revisions import LocalRepo, load_revisions
from reconciler.plan.rights import diff_rights, naive_diff

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "base").is_dir())
UPDATE = os.environ.get("OPSMAP_UPDATE_GOLDEN") == "1"


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path]:
    folder = GOLDEN / request.param
    author_file = folder / "author.txt"
    author = author_file.read_text().strip() if author_file.is_file() else HEAD_AUTHOR
    repo = tmp_path / "repo"
    make_repo(repo, folder / "base", folder / "head", head_author=author)
    return folder, repo


def plan_output(repo: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> str:
    code = main(["plan", "--base", "base", "--repo", str(repo), "--format", fmt])
    out, err = capsys.readouterr()
    assert code == 0, err
    local = LocalRepo(repo)
    for ref, name in (("base", "<base-sha>"), ("HEAD", "<head-sha>")):
        sha = local.resolve(ref)
        out = out.replace(sha, name).replace(sha[:12], name)
    return out


@pytest.mark.parametrize("fmt", ["markdown", "json"])
def test_golden(case: tuple[Path, Path], fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    folder, repo = case
    out = plan_output(repo, fmt, capsys)
    expected = folder / ("expected.md" if fmt == "markdown" else "expected.json")
    if UPDATE:
        expected.write_text(out, encoding="utf-8")
    assert expected.is_file(), f"no {expected.name}: run with OPSMAP_UPDATE_GOLDEN=1"
    if fmt == "json":
        assert json.loads(out) == json.loads(expected.read_text(encoding="utf-8"))
    assert out == expected.read_text(encoding="utf-8")


def test_fast_rights_equal_naive(case: tuple[Path, Path]) -> None:
    _, repo = case
    base, head = load_revisions(LocalRepo(repo), "base", "HEAD")
    fast = diff_rights(base.repo, head.repo)
    gained, lost = naive_diff(base.repo, head.repo)
    assert {c.right for c in fast.gained} == gained
    assert {c.right for c in fast.lost} == lost


def test_every_case_has_a_change() -> None:
    """A case whose head equals its base would test nothing."""
    for name in CASES:
        base = {p.relative_to(GOLDEN / name / "base"): p.read_bytes()
                for p in (GOLDEN / name / "base").rglob("*") if p.is_file()}  # fmt: skip
        head = {p.relative_to(GOLDEN / name / "head"): p.read_bytes()
                for p in (GOLDEN / name / "head").rglob("*") if p.is_file()}  # fmt: skip
        assert base != head, name
