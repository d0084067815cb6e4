"""No Python module of the project is over 600 lines: a longer one is split along a seam."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 600
FOLDERS = ("reconciler", "agentless", "benchmarks", "tests")


def test_no_module_is_over_600_lines() -> None:
    modules = [path for folder in FOLDERS for path in sorted((ROOT / folder).rglob("*.py"))]
    assert len(modules) > 100, modules  # the walk found the project
    counts = {str(path.relative_to(ROOT)): len(path.read_bytes().splitlines()) for path in modules}
    too_long = {name: count for name, count in counts.items() if count > MAX_LINES}
    assert not too_long, f"over {MAX_LINES} lines, split along a seam: {too_long}"
