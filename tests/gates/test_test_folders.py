"""Tests are filed by the package they test, and no file of the project edits ``sys.path``.

A test module lives under ``tests/<name>/`` where ``<name>`` is a package: a subpackage of
``reconciler/`` (``tests/loop`` for ``reconciler.loop``) or the ``agentless`` library. The
few folders that test no single package are listed in ``ACROSS_PACKAGES`` with why; a
grab bag such as ``tests/reconciler/`` is neither. Without ``__init__.py`` files pytest
imports a test module by its file name, so file names are unique across ``tests/``.

Helpers are imported by name from ``tests/support`` (pyproject's ``pythonpath``) and the
packages are installed, so nothing under ``tests/``, ``benchmarks/`` or ``scripts/`` edits
``sys.path``: an edit there would hide an import that fails for everyone else.

Each rule is a function over a tree; the tests run it on made-up trees and sources that
break it (so the rule can fail) and then on the project.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("tests", "benchmarks", "scripts")

ACROSS_PACKAGES = {
    "gates": "the project's own rules: module size, layering, leaks, these folders",
    "packaging": "the wheel, the container, the CI templates, the unit and the dashboards",
    "reconciler_e2e": "`opsmap run` as a process, through HTTP, git and the state store",
    "requests_e2e": "requests carried out by a real `opsmap run` on real hosts",
    "validate": "`opsmap validate` over whole repos: the loader, the rules and the CLI",
    "bench": "what the benchmarks build, checked before they are timed",
}

# The list's methods that change it in place.
MUTATORS = frozenset({"append", "extend", "insert", "remove", "pop", "clear", "reverse", "sort"})


def packages(root: Path) -> set[str]:
    """The names a test folder may have: the subpackages of ``reconciler`` and ``agentless``."""
    subpackages = {init.parent.name for init in (root / "reconciler").glob("*/__init__.py")}
    return subpackages | {"agentless"}


def misfiled(root: Path) -> list[str]:
    """Test modules outside a package's folder, as paths relative to ``root``."""
    allowed = packages(root) | set(ACROSS_PACKAGES)
    tests = root / "tests"
    found = []
    for module in sorted(tests.rglob("test_*.py")):
        parts = module.relative_to(tests).parts
        if len(parts) == 1 or parts[0] not in allowed:
            found.append(str(module.relative_to(root)))
    return found


def shared_names(root: Path) -> dict[str, int]:
    """Module file names under ``tests/`` used more than once (``conftest.py`` aside)."""
    names = Counter(path.name for path in (root / "tests").rglob("*.py"))
    return {name: count for name, count in names.items() if count > 1 and name != "conftest.py"}


class _PathEdits(ast.NodeVisitor):
    """Lines of one module that change ``sys.path`` (through any name bound to it)."""

    def __init__(self) -> None:
        self.sys_names = {"sys"}
        self.path_names: set[str] = set()
        self.lines: list[int] = []

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == "sys":
                self.sys_names.add(alias.asname or "sys")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if node.module == "sys" and alias.name == "path":
                self.path_names.add(alias.asname or "path")

    def is_sys_path(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Subscript):
            return self.is_sys_path(node.value)
        if isinstance(node, ast.Name):
            return node.id in self.path_names
        return (
            isinstance(node, ast.Attribute)
            and node.attr == "path"
            and isinstance(node.value, ast.Name)
            and node.value.id in self.sys_names
        )

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr in MUTATORS
            and self.is_sys_path(func.value)
        ):
            self.lines.append(node.lineno)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.targets(node.targets, node.lineno)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.targets([node.target], node.lineno)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.targets([node.target], node.lineno)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        self.targets(node.targets, node.lineno)
        self.generic_visit(node)

    def targets(self, targets: list[ast.expr], line: int) -> None:
        for target in targets:
            if isinstance(target, ast.Tuple | ast.List):
                self.targets(target.elts, line)
            elif isinstance(target, ast.Starred):
                self.targets([target.value], line)
            elif self.is_sys_path(target):
                self.lines.append(line)


def path_edits(source: str) -> list[int]:
    """The lines of ``source`` that change ``sys.path``."""
    edits = _PathEdits()
    edits.visit(ast.parse(source))
    return sorted(set(edits.lines))


def path_editors(root: Path) -> dict[str, list[int]]:
    """Every module under the scanned folders that changes ``sys.path``, with its lines."""
    found = {}
    for folder in SCANNED:
        for module in sorted((root / folder).rglob("*.py")):
            lines = path_edits(module.read_text(encoding="utf-8"))
            if lines:
                found[str(module.relative_to(root))] = lines
    return found


def test_a_test_module_outside_a_package_folder_is_reported(tmp_path: Path) -> None:
    for package in ("reconciler/loop", "agentless"):
        (tmp_path / package).mkdir(parents=True)
        (tmp_path / package / "__init__.py").touch()
    modules = ["loop/test_a.py", "gates/test_b.py", "reconciler/test_c.py", "test_d.py",
               "misc/deep/test_e.py", "agentless/ssh/test_f.py", "support/helper.py"]  # fmt: skip
    for module in modules:
        (tmp_path / "tests" / module).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "tests" / module).touch()
    assert misfiled(tmp_path) == [
        "tests/misc/deep/test_e.py",
        "tests/reconciler/test_c.py",
        "tests/test_d.py",
    ]


def test_every_test_module_is_under_a_package_or_a_listed_folder() -> None:
    assert {"loop", "store", "policy", "server", "model", "cli"} <= packages(ROOT)
    assert not set(ACROSS_PACKAGES) & packages(ROOT), "a package's folder needs no listing"
    assert misfiled(ROOT) == [], "file each under tests/<package>/, the package it tests"


def test_a_module_name_is_used_once_under_tests(tmp_path: Path) -> None:
    for module in ("loop/test_status.py", "model/test_status.py", "a/conftest.py", "conftest.py"):
        (tmp_path / "tests" / module).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "tests" / module).touch()
    assert shared_names(tmp_path) == {"test_status.py": 2}
    assert shared_names(ROOT) == {}, "pytest imports these by file name: rename one"


@pytest.mark.parametrize(
    "source",
    [
        "import sys\nsys.path.insert(0, 'src')",
        "import sys\nsys.path.append('src')",
        "import sys\nsys.path.extend(['src'])",
        "import sys\nsys.path = ['src']",
        "import sys\nsys.path[:0] = ['src']",
        "import sys\nsys.path += ['src']",
        "import sys\ndel sys.path[0]",
        "import sys\nfirst, sys.path = 1, []",
        "import sys\nfirst, *sys.path = 'a', 'b'",
        "import sys as system\nsystem.path.insert(0, 'src')",
        "from sys import path\npath.append('src')",
        "from sys import path as p\np[0] = 'src'",
        "import sys\ndef f():\n    if True:\n        sys.path.insert(0, 'src')",
    ],
)
def test_each_way_of_editing_sys_path_is_found(source: str) -> None:
    assert path_edits(source) == [len(source.splitlines())]


@pytest.mark.parametrize(
    "source",
    [
        "import sys\nprint(sys.path[0], list(sys.path))",
        "import sys\nseen = {}\nseen[sys.path[0]] = True",
        "import sys\nroots = sys.path.copy()\nroots.append('x')",
        "import os\nos.path.join('a', 'b')",
        "from pathlib import Path\npath = Path('x')\npath.append = 1",
    ],
)
def test_reading_sys_path_or_another_path_is_not_an_edit(source: str) -> None:
    assert path_edits(source) == []


def test_no_file_under_tests_benchmarks_or_scripts_edits_sys_path() -> None:
    scanned = [path for folder in SCANNED for path in (ROOT / folder).rglob("*.py")]
    assert len(scanned) > 100, scanned  # the walk found the project
    assert path_editors(ROOT) == {}, "import by name: the packages are installed"
