"""The import-linter contract in pyproject constrains: a forbidden import breaks it.

Each case copies the two packages and pyproject.toml to a temporary tree, adds one import
that the layers forbid (a sibling importing its independent sibling, a lower layer
importing a higher one) and runs the real ``lint-imports`` there; the unmodified copy is
the control, so a contract that kept everything would fail the first test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def lint_imports() -> str:
    beside_python = Path(sys.executable).parent / "lint-imports"
    found = str(beside_python) if beside_python.exists() else shutil.which("lint-imports")
    assert found, "lint-imports is not installed (it is in the dev dependencies)"
    return found


def copy_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("reconciler", "agentless"):
        shutil.copytree(ROOT / package, tree / package, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def run_contract(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [lint_imports(), "--no-cache"],
        cwd=tree, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_unmodified_tree_keeps_the_contract(tmp_path: Path) -> None:
    result = run_contract(copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        # independent siblings: the actions never reach into the audit trail...
        ("reconciler/actions/runner.py", "reconciler.audit.outbox"),
        # ...the loop never into the request pipeline, nor the plan into the loop...
        ("reconciler/loop/reconciler.py", "reconciler.requests.processor"),
        ("reconciler/plan/build.py", "reconciler.loop.view"),
        # ...git never into the state store
        ("reconciler/git/history.py", "reconciler.store.writes"),
        # a lower layer never imports a higher one
        ("reconciler/model/maps.py", "reconciler.repo.loader"),
        ("reconciler/server/webhook.py", "reconciler.cli"),
        # the check runner knows the Transport protocol, never a transport
        ("agentless/runner.py", "agentless.ssh.transport"),
    ],
)
def test_a_forbidden_import_breaks_the_contract(
    tmp_path: Path, module: str, forbidden: str
) -> None:
    tree = copy_tree(tmp_path)
    target = tree / module
    source = target.read_text(encoding="utf-8")
    target.write_text(f"{source}\nimport {forbidden}  # noqa: E402\n", encoding="utf-8")

    result = run_contract(tree)

    assert result.returncode != 0, result.stdout
    assert "1 broken" in result.stdout, result.stdout
    importer = module.removesuffix(".py").replace("/", ".")
    assert f"{importer} -> {forbidden}" in result.stdout, result.stdout
