"""The map view's layout: dependents above what they depend on, orders that cross less,
cycles survived, wide layers wrapped."""

from __future__ import annotations

from reconciler.statuspage.layout import NODE_W, ROW_LIMIT, layers, layout, order


def test_longest_path_layers() -> None:
    deps = {"web": ["api"], "api": ["db", "cache"], "cache": [], "db": [], "batch": ["db"]}
    got = layers(list(deps), deps)
    assert got == {"web": 2, "api": 1, "cache": 0, "db": 0, "batch": 1}


def test_dependents_drawn_above_their_dependencies() -> None:
    deps = {"web": ["api"], "api": ["db"], "db": [], "admin": ["db", "web"]}
    placed = {p.id: p for p in layout(list(deps), deps).nodes}
    for node, targets in deps.items():
        for target in targets:
            assert placed[node].y < placed[target].y, (node, target)


def test_unknown_dependency_and_duplicates_are_ignored() -> None:
    deps = {"a": ["ghost", "b", "b"], "b": []}
    assert layers(["a", "b"], deps) == {"a": 1, "b": 0}


def test_a_cycle_still_gets_layers() -> None:
    deps = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"], "e": []}
    got = layers(list(deps), deps)
    assert set(got) == set(deps)
    assert got["d"] > got["a"]
    placed = layout(list(deps), deps)
    assert len({(p.x, p.y) for p in placed.nodes}) == len(deps)


def test_a_self_dependency_is_safe() -> None:
    assert layers(["a"], {"a": ["a"]}) == {"a": 0}


def test_barycenter_uncrosses_two_chains() -> None:
    # top layer a1, b1 ; bottom a0, b0 given crossed: a1 -> a0, b1 -> b0, bottom order b0, a0
    nodes = ["b0", "a0", "a1", "b1"]
    deps = {"a1": ["a0"], "b1": ["b0"]}
    rows = order(layers(nodes, deps), nodes, deps)
    top, bottom = rows[1], rows[0]
    assert top.index("a1") < top.index("b1")
    assert bottom.index("a0") < bottom.index("b0")


def test_wide_layer_wraps_and_boxes_never_overlap() -> None:
    nodes = [f"n{i}" for i in range(ROW_LIMIT * 3 + 1)] + ["top"]
    deps = {"top": nodes[:-1]}
    result = layout(nodes, deps)
    boxes = {(p.x, p.y) for p in result.nodes}
    assert len(boxes) == len(nodes)
    rows = {p.y for p in result.nodes}
    assert len(rows) == 1 + 4  # the top node, then four rows of the wide layer
    assert result.width >= ROW_LIMIT * NODE_W
    assert all(0 <= p.x <= result.width - NODE_W for p in result.nodes)


def test_empty_graph() -> None:
    result = layout([], {})
    assert result.nodes == ()
    assert result.width > 0
    assert result.height > 0


def test_large_graph_is_laid_out() -> None:
    # a chain of 2,000 plus a fan: no recursion limit, every node placed once
    nodes = [f"c{i}" for i in range(2000)]
    deps = {f"c{i}": [f"c{i - 1}"] for i in range(1, 2000)}
    result = layout(nodes, deps)
    assert len(result.nodes) == 2000
    assert max(p.layer for p in result.nodes) == 1999
