"""Dependency bombs through the real ``opsmap validate``: one finding per cycle group, small output.

A pull request chooses the dependency graph. These maps of 10,000 components are what a
naive walk turns into gigabytes: a valid 10,000-deep chain, every component also depending
on the first, and that with a cycle through all of them (a depth-first walk meets one
back edge per component, and used to report each with the whole path). The assertions
are on counts and sizes, never on time (benchmarks/validate_bench.py measures that).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from validate_support import OPSMAP

N = 10_000
MAX_OUTPUT = 100_000
"""Bytes: what validate may print about one bomb, whatever its size."""


def bomb(root: Path, wiring: str, n: int = N) -> Path:
    """A repo whose one map is ``n`` components wired as ``wiring`` says.

    chain: each depends on the one before; fan: and on the first too; fan-cycle: and the
    first on the last; ring: a chain whose first depends on its last, plus a separate
    pair that depend on each other.
    """
    lines = ["name: bomb", "components:"]
    for i in range(n):
        deps = [f"c{i - 1}"] if i else []
        if wiring in ("fan", "fan-cycle") and i > 1:
            deps.append("c0")
        if wiring in ("fan-cycle", "ring") and i == 0:
            deps.append(f"c{n - 1}")
        lines.append(f"  - id: c{i}")
        if deps:
            lines.append(f"    dependencies: [{', '.join(deps)}]")
    if wiring == "ring":
        lines += ["  - id: d0", "    dependencies: [d1]", "  - id: d1", "    dependencies: [d0]"]
    (root / "maps").mkdir(parents=True)
    (root / "maps" / "bomb.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def validate(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OPSMAP, "validate", *args, str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("wiring", ["chain", "fan"])
def test_a_valid_deep_graph_is_valid_and_quiet(tmp_path: Path, wiring: str) -> None:
    done = validate(bomb(tmp_path, wiring))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == ""
    assert "Traceback" not in done.stderr


def test_a_cycle_through_every_component_is_one_finding(tmp_path: Path) -> None:
    root = bomb(tmp_path, "fan-cycle")
    text = validate(root)
    assert text.returncode == 1
    assert len(text.stdout) + len(text.stderr) < MAX_OUTPUT
    (line,) = text.stdout.splitlines()
    assert "[dependency-cycle]" in line
    assert f"c0 → c{N - 1} → c0" in line  # the shortest cycle through the first
    assert f"{N} components depend on one another" in line
    assert "… and 9990 more" in line

    as_json = validate(root, "--format", "json")
    assert len(as_json.stdout) < MAX_OUTPUT
    report = json.loads(as_json.stdout)
    (finding,) = report["errors"]
    assert finding["code"] == "dependency-cycle"
    # at the dependency that closes the cycle: c{N-1}'s `c0`
    source = (root / "maps" / "bomb.yaml").read_text().splitlines()
    assert source[finding["line"] - 1].strip() == f"dependencies: [c{N - 2}, c0]"

    github = validate(root, "--format", "github")
    assert len(github.stdout) < MAX_OUTPUT
    assert github.stdout.count("::error") == 1


def test_each_cycle_group_once_with_a_capped_path(tmp_path: Path) -> None:
    done = validate(bomb(tmp_path, "ring"), "--format", "json")
    assert len(done.stdout) < MAX_OUTPUT
    messages = sorted(f["message"] for f in json.loads(done.stdout)["errors"])
    assert len(messages) == 2
    long, short = messages
    assert short == "dependency cycle: d0 → d1 → d0"
    # c0 → c{N-1} → c{N-2} → … → c1 → c0 is the only cycle through c0: shown capped
    assert long.startswith(f"dependency cycle: c0 → c{N - 1} → c{N - 2} → ")
    assert f"… {N - 10} more … → c0" in long
    assert "depend on one another" not in long  # the cycle is the whole group


def checks_repo(root: Path, *, hosts: int, components: dict[str, int]) -> Path:
    """``hosts`` hosts labelled ``role: r``; per map name, that many components with one
    check each, selecting them all; and 10,000 components selecting none."""
    (root / "inventory").mkdir(parents=True)
    (root / "inventory" / "hosts.yaml").write_text(
        "hosts:\n"
        + "".join(
            f"  - {{name: h{i}, address: 10.1.{i // 250}.{i % 250 + 1}, labels: {{role: r}}}}\n"
            for i in range(hosts)
        )
    )
    (root / "maps").mkdir()
    check = "[{name: k, type: tcp, config: {port: 80}, interval_secs: 10}]"
    for name, count in components.items():
        lines = [f"name: {name}", "components:"]
        lines += [
            f"  - {{id: c{i}, hosts: {{labels: {{role: r}}}}, checks: {check}}}"
            for i in range(count)
        ]
        (root / "maps" / f"{name}.yaml").write_text("\n".join(lines) + "\n")
    lines = ["name: none", "components:"]
    lines += [
        f"  - {{id: n{i}, hosts: {{labels: {{role: x{i}}}}}, checks: {check}}}" for i in range(N)
    ]
    (root / "maps" / "none.yaml").write_text("\n".join(lines) + "\n")
    return root


def test_too_many_scheduled_checks_is_an_error_at_each_map(tmp_path: Path) -> None:
    """400 hosts × (200 + 100 components) × 1 check = 120,000 scheduled checks > 100,000."""
    root = checks_repo(tmp_path / "big", hosts=400, components={"a": 200, "b": 100})
    done = validate(root, "--format", "json")
    assert done.returncode == 1, done.stderr
    errors = [e for e in json.loads(done.stdout)["errors"] if e["code"] == "too-many-checks"]
    assert [(e["file"].split("/big/")[-1], e["line"]) for e in errors] == [
        ("maps/a.yaml", 1),
        ("maps/b.yaml", 1),
    ]
    assert "would schedule 120,000 checks" in errors[0]["message"]
    assert "more than 100,000; map 'a' schedules 80,000 of them" in errors[0]["message"]
    assert "map 'b' schedules 40,000 of them" in errors[1]["message"]


def test_as_many_scheduled_checks_as_allowed_is_valid(tmp_path: Path) -> None:
    """400 hosts × 250 components = 100,000: the limit itself is fine."""
    root = checks_repo(tmp_path / "ok", hosts=400, components={"a": 250})
    done = validate(root, "--format", "json")
    codes = {e["code"] for e in json.loads(done.stdout)["errors"]}
    assert "too-many-checks" not in codes
