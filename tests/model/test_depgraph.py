"""Cycles and impact over a map's dependency graph: one pass each, bounded results."""

from __future__ import annotations

import sys

from reconciler.model.depgraph import (
    SHOWN_IDS,
    Impact,
    capped,
    cycle_through,
    root_causes,
    strongly_connected,
)


def test_each_strongly_connected_component_once_in_map_order() -> None:
    graph = {
        "web": ["api"],
        "api": ["cache", "db"],
        "cache": ["api"],
        "db": ["disk"],
        "disk": ["db", "zookeeper"],  # zookeeper: external, no edges of its own
        "lone": [],
    }
    assert strongly_connected(graph) == [["api", "cache"], ["db", "disk"]]


def test_a_dag_has_no_strongly_connected_component() -> None:
    graph = {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}
    assert strongly_connected(graph) == []


def test_a_cycle_through_everything_is_one_component_with_a_short_cycle() -> None:
    # every component depends on the one before it and on the first, the first on the
    # last: a depth-first walk meets a back edge per component; naive reporting is
    # one finding (and one whole path) per back edge, quadratic in all.
    n = 20_000
    graph = {f"c{i}": [f"c{(i - 1) % n}"] + (["c0"] if i > 1 else []) for i in range(n)}
    components = strongly_connected(graph)
    assert len(components) == 1
    assert len(components[0]) == n
    assert components[0][:3] == ["c0", "c1", "c2"]
    assert cycle_through(graph, components[0]) == ["c0", f"c{n - 1}", "c0"]


def test_a_long_chain_needs_no_recursion() -> None:
    n = sys.getrecursionlimit() * 5
    graph = {f"c{i}": [f"c{i + 1}"] if i + 1 < n else ["c0"] for i in range(n)}
    (component,) = strongly_connected(graph)
    cycle = cycle_through(graph, component)
    assert len(cycle) == n + 1
    assert cycle[0] == cycle[-1] == "c0"


def test_cycle_through_stays_inside_the_component() -> None:
    graph = {"a": ["x", "b"], "x": ["a"], "b": ["c"], "c": ["a"]}
    assert cycle_through(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]


def test_capped_lists_the_first_ids_and_counts_the_rest() -> None:
    assert capped(["a", "b"]) == "a, b"
    ids = [f"c{i}" for i in range(SHOWN_IDS + 5)]
    assert capped(ids) == ", ".join(ids[:SHOWN_IDS]) + ", … and 5 more"


def test_root_causes_direct_first_then_below_without_repeats() -> None:
    graph = {
        "web": ["api", "cdn"],
        "api": ["db", "cache"],
        "cache": ["db"],
        "db": ["disk"],
        "disk": [],
        "cdn": ["external-dns"],
    }
    failing = {"cache", "disk", "cdn"}
    found = root_causes(graph, failing.__contains__)
    assert found["disk"] == Impact()
    assert found["db"] == Impact(("disk",))
    assert found["cache"] == Impact(("disk",))
    assert found["api"] == Impact(("cache", "disk"))
    assert found["web"] == Impact(("cdn", "cache", "disk"))
    assert found["cdn"] == Impact()


def test_root_causes_of_a_deep_failing_chain_stay_capped() -> None:
    # naive impact lists the whole chain below each component: n²/2 ids in all
    n = 10_000
    graph = {f"c{i}": [f"c{i - 1}"] if i else [] for i in range(n)}
    found = root_causes(graph, lambda _: True, keep=3)
    assert found["c0"] == Impact()
    assert found["c1"] == Impact(("c0",))
    assert found["c3"] == Impact(("c2", "c1", "c0"))
    assert found["c4"] == Impact(("c3", "c2", "c1"), more=True)
    assert found[f"c{n - 1}"] == Impact((f"c{n - 2}", f"c{n - 3}", f"c{n - 4}"), more=True)
    assert sum(len(i.causes) for i in found.values()) <= 3 * n


def test_root_causes_with_a_wide_shared_dependency() -> None:
    n = 10_000
    graph = {
        f"c{i}": [f"c{i - 1}", "c0"] if i > 1 else ([] if i == 0 else ["c0"]) for i in range(n)
    }
    found = root_causes(graph, lambda cid: cid == "c0")
    assert all(found[f"c{i}"] == Impact(("c0",)) for i in range(1, n))
    assert not found["c0"]


def test_more_is_exact_when_dependencies_together_exceed_the_cap() -> None:
    graph = {"top": ["a", "b"], "a": ["a1", "a2"], "b": ["b1"], "a1": [], "a2": [], "b1": []}
    failing = {"a1", "a2", "b1"}
    assert root_causes(graph, failing.__contains__, keep=3)["top"] == Impact(("a1", "a2", "b1"))
    assert root_causes(graph, failing.__contains__, keep=2)["top"] == Impact(
        ("a1", "a2"), more=True
    )
