"""What ``/metrics`` and ``/api/v1/status`` say about components, scraped over HTTP."""

from __future__ import annotations

import platform
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

from e2e_support import (
    HOST,
    MAP,
    SHA_RE,
    Opsmap,
    command_check,
    component,
    file_check,
    find_component,
    repo_files,
    sample_value,
    samples,
    wait_for,
)
from gitrepos import ALICE, BareRepo, Clone

Start = Callable[..., Opsmap]
STATUSES = {"ok", "warning", "unknown", "error", "starting", "stopping"}


def component_series(metrics: str, component_id: str) -> list[str]:
    return [
        f"{s.name}{s.labels}" for s in samples(metrics) if s.labels.get("component") == component_id
    ]


def test_component_status_series_counters_and_removed_components(
    remote: BareRepo, clone: Clone, opsmap: Start
) -> None:
    both = [
        component("a", [command_check("fine", "true")]),
        component("b", [command_check("warns", "echo 'WARNING - a little'; exit 1")]),
    ]
    first = clone.commit("a and b", author=ALICE, files=repo_files(both))
    clone.push()
    service = opsmap(remote.file_url, poll_interval=1)
    service.wait_applied(first)
    service.wait_check("a", "fine", "OK")
    service.wait_check("b", "warns", "WARNING")

    metrics = service.metrics()
    for component_id, current in (("a", "ok"), ("b", "warning")):
        series = {
            s.labels["status"]: s.value
            for s in samples(metrics)
            if s.name == "opsmap_component_status"
            and s.labels == {"map": MAP, "component": component_id, "status": s.labels["status"]}
        }
        assert set(series) == STATUSES, series
        assert [status for status, value in series.items() if value == 1] == [current], series
        assert sum(series.values()) == 1
    assert component_series(metrics, "b"), "component b has no series while it exists"
    assert (
        sample_value(metrics, "opsmap_check_status", component="b", check="warns", host=HOST) == 1.0
    )

    counters = [s for s in samples(metrics) if s.name.endswith("_total")]
    assert counters, "no counter at all"
    for s in counters:
        assert "host" not in s.labels, s
        for value in s.labels.values():
            assert not SHA_RE.search(value), f"a commit SHA in a counter label: {s}"
            assert HOST not in value, f"a host name in a counter label: {s}"

    only_a = clone.commit("b is gone", author=ALICE, files=repo_files(both[:1]))
    clone.push()
    service.wait_applied(only_a)
    metrics = service.metrics()
    assert component_series(metrics, "b") == []
    assert component_series(metrics, "a"), "component a lost its series"


def test_a_failing_dependency_is_listed_in_impacted_by(
    remote: BareRepo, clone: Clone, opsmap: Start, tmp_path: Path
) -> None:
    flag = tmp_path / "a-is-up"
    flag.touch()
    components = [
        component("a", [file_check("up", flag)]),
        component("b", [command_check("fine", "true")], dependencies=["a"]),
    ]
    first = clone.commit("b needs a", author=ALICE, files=repo_files(components))
    clone.push()
    service = opsmap(remote.file_url, poll_interval=1)
    service.wait_applied(first)
    service.wait_check("a", "up", "OK")
    service.wait_check("b", "fine", "OK")
    assert find_component(service.status(), "b")["impacted_by"] == []

    flag.unlink()
    service.wait_check("a", "up", "CRITICAL")
    status = service.status()
    a, b = find_component(status, "a"), find_component(status, "b")
    assert a["status"] == "error"
    assert a["impacted_by"] == []
    assert b["impacted_by"] == ["a"]
    assert b["status"] == "ok"
    metrics = service.metrics()
    assert sample_value(metrics, "opsmap_component_impacted", component="b") == 1.0
    assert sample_value(metrics, "opsmap_component_status", component="b", status="ok") == 1.0
    assert sample_value(metrics, "opsmap_component_status", component="a", status="error") == 1.0

    flag.touch()
    wait_for(
        lambda: find_component(service.status(), "b")["impacted_by"] == [],
        what="b no longer impacted once a recovers",
    )


def test_build_info_names_the_version_that_opsmap_version_prints(
    remote: BareRepo, clone: Clone, opsmap: Start
) -> None:
    first = clone.commit("a", author=ALICE, files=repo_files([component("a", [])]))
    clone.push()
    service = opsmap(remote.file_url)
    service.wait_applied(first)
    printed = subprocess.run(
        [sys.executable, "-m", "reconciler", "--version"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip

    info = [s for s in samples(service.metrics()) if s.name == "opsmap_build_info"]

    assert [(s.labels["version"], s.value) for s in info] == [(version("opsmap"), 1.0)]
    assert printed == f"opsmap {version('opsmap')}\n"
    assert info[0].labels["python"] == platform.python_version()
