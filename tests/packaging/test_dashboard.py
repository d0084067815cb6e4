"""packaging/grafana/opsmap.json: every PromQL expression parses, and names only what a
real ``opsmap run`` exposes.

Each panel's expression (Grafana's variables substituted) becomes a recording rule of a
temporary rules file that ``promtool check rules`` must accept. The metrics and labels
they name (and the query variables') must all be in a real ``/metrics`` scrape of a real
``opsmap run`` following a git repo of this project's own examples (maps/, policies/,
inventory/, requests/, opsmap.yaml); Prometheus adds only ``job`` and ``instance``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dashboard_support import (
    FUNCTIONS,
    TARGET_LABELS,
    expressions,
    names,
    substitute,
    variable_queries,
)
from e2e_support import Opsmap, Processes, start_opsmap, wait_for
from gitrepos import ALICE, BareRepo, Clone
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "packaging" / "grafana" / "opsmap.json"
EXAMPLES = ("maps", "policies", "inventory", "requests")
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
}


def dashboard() -> dict[str, object]:
    loaded: dict[str, object] = json.loads(DASHBOARD.read_text())
    return loaded


def promtool_check(tmp_path: Path, exprs: dict[str, str]) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (Debian's prometheus package)"
    rules = [
        {"record": f"opsmap_dashboard:expr_{i}", "expr": substitute(expr)}
        for i, expr in enumerate(exprs.values())
    ]
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    return subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_expression_parses(tmp_path: Path) -> None:
    exprs = expressions(dashboard())
    assert len(exprs) >= 20, exprs
    for where, expr in exprs.items():
        left = re.findall(r"\$\w+", substitute(expr))
        assert not left, f"{where}: variables the test does not substitute: {left}"
    done = promtool_check(tmp_path, exprs)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in done.stdout, done.stdout


def test_a_broken_expression_is_caught(tmp_path: Path) -> None:
    done = promtool_check(tmp_path, {"bad": "sum by (map (opsmap_component_status)"})
    assert done.returncode != 0, done.stdout


def test_names_are_read_from_expressions() -> None:
    metrics, labels, functions = names(
        'sum by (le, map) (rate(opsmap_x_bucket{map=~"$map", a!="b"}[5m])) or on() vector(0)'
    )
    assert metrics == {"opsmap_x_bucket"}
    assert labels == {"le", "map", "a"}
    assert functions == {"sum", "rate", "vector"}


def exposed(metrics_text: str) -> tuple[set[str], set[str], set[str]]:
    """(series names declared, series names with samples, label names) of a scrape."""
    declared: set[str] = set()
    sampled: set[str] = set()
    labels: set[str] = set()
    for family in text_string_to_metric_families(metrics_text):
        declared.add(family.name)
        declared.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
        for sample in family.samples:
            sampled.add(sample.name)
            labels.update(sample.labels)
    return declared | sampled, sampled, labels


@pytest.fixture
def examples_service(tmp_path: Path) -> Iterator[Opsmap]:
    remote = BareRepo.create(tmp_path / "remote.git")
    clone = Clone.create(remote, tmp_path / "work")
    files: dict[str, str | bytes | None] = {"opsmap.yaml": (ROOT / "opsmap.yaml").read_bytes()}
    for folder in EXAMPLES:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file():
                files[str(path.relative_to(ROOT))] = path.read_bytes()
    sha = clone.commit("the project's examples", author=ALICE, files=files)
    clone.push()
    processes = Processes()
    try:
        service = start_opsmap(
            processes, repo=remote.file_url, state_dir=tmp_path / "state", log=tmp_path / "run.log"
        )
        service.wait_applied(sha)
        yield service
    finally:
        processes.close()


def test_every_name_is_in_a_real_scrape(examples_service: Opsmap) -> None:
    service = examples_service
    text = wait_for(
        lambda: next(
            (m for m in [service.metrics()] if "opsmap_check_duration_seconds_bucket" in m),
            None,
        ),
        what="a check run in /metrics",
    )
    declared, sampled, labels = exposed(text)
    labels |= TARGET_LABELS | {"le"}
    for where, expr in expressions(dashboard()).items():
        metrics, label_names, functions = names(substitute(expr))
        assert metrics, f"{where}: no metric in {expr!r}"
        assert metrics <= declared, f"{where}: not in /metrics: {sorted(metrics - declared)}"
        assert functions <= FUNCTIONS, f"{where}: unexpected functions {functions - FUNCTIONS}"
        # A counter that no request or action has moved yet is declared with no sample,
        # so its labels cannot be seen; the others' labels must be.
        if metrics <= sampled:
            assert label_names <= labels, f"{where}: labels not in /metrics: {label_names - labels}"
    for name, query in variable_queries(dashboard()).items():
        found = re.fullmatch(r"label_values\((\w+)(\{.*\})?,\s*(\w+)\)", query)
        assert found, f"variable {name}: {query!r}"
        assert found.group(1) in sampled, f"variable {name}: {found.group(1)} not in /metrics"
        assert found.group(3) in labels, f"variable {name}: label {found.group(3)} not in /metrics"
