"""The map view's graph layout, computed on the server in O((V + E) log V).

Layered, as Sugiyama drawings are, with the cheap parts only:

1. **Layers by longest path** over the dependency graph: a component that depends on
   nothing sits on the bottom layer, each other one a layer above the highest of its
   dependencies, so dependents are drawn above what they depend on. Validation rejects
   cycles; a cycle that gets here anyway is broken where it is met (its members still get
   a layer each), never looped on.
2. **Order within a layer** by a few barycenter sweeps: each node moves to the mean
   position of its neighbours, layer by layer, down then up (a sort per layer per sweep).
3. **Coordinates**: a wide layer wraps onto several rows of at most :data:`ROW_LIMIT`
   nodes; rows are centred on the widest.

The output is plain numbers for the browser's SVG: no layout runs in JavaScript.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

NODE_W = 180
NODE_H = 48
GAP_X = 36
GAP_Y = 64
MARGIN = 24
ROW_LIMIT = 12
"""Nodes per row: a wider layer continues on the row below (a 500-wide layer stays legible)."""
SWEEPS = 4


@dataclass(frozen=True, slots=True)
class Placed:
    """A node's box (top-left corner and size) and its layer (0: depends on nothing)."""

    id: str
    x: int
    y: int
    layer: int


@dataclass(frozen=True, slots=True)
class Layout:
    width: int
    height: int
    nodes: tuple[Placed, ...]
    """In the order of the input nodes."""


def layers(nodes: Sequence[str], dependencies: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each node's layer: 0 with no dependency, else 1 + the highest of its dependencies'.

    Kahn's order from the nodes that depend on nothing; nodes left on a cycle are then
    placed one at a time in input order, counting only the dependencies already placed.
    Dependencies naming no node are ignored.
    """
    known = set(nodes)
    deps = {n: [d for d in dict.fromkeys(dependencies.get(n, ())) if d in known] for n in nodes}
    dependents: dict[str, list[str]] = {n: [] for n in nodes}
    waiting: dict[str, int] = {}
    for n in nodes:
        waiting[n] = len(deps[n])
        for d in deps[n]:
            dependents[d].append(n)
    layer: dict[str, int] = {}
    ready = deque(n for n in nodes if waiting[n] == 0)
    pending = iter(nodes)
    while len(layer) < len(waiting):
        if not ready:  # a cycle: place its first unplaced member with what is known
            ready.append(next(n for n in pending if n not in layer))
        n = ready.popleft()
        if n in layer:
            continue
        layer[n] = 1 + max((layer[d] for d in deps[n] if d in layer), default=-1)
        for m in dependents[n]:
            waiting[m] -= 1
            if waiting[m] == 0 and m not in layer:
                ready.append(m)
    return layer


def order(
    layer: Mapping[str, int],
    nodes: Sequence[str],
    dependencies: Mapping[str, Sequence[str]],
    *,
    sweeps: int = SWEEPS,
) -> list[list[str]]:
    """The nodes of each layer (index: layer) in the order that crosses fewer edges."""
    rows: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for n in nodes:
        rows[layer[n]].append(n)
    neighbours: dict[str, list[str]] = {n: [] for n in nodes}
    for n in nodes:
        for d in dependencies.get(n, ()):
            if d in neighbours and d != n:
                neighbours[n].append(d)
                neighbours[d].append(n)
    position = {n: i / max(len(row), 1) for row in rows for i, n in enumerate(row)}

    def sweep(row: list[str], toward: int) -> None:
        def barycenter(n: str) -> float:
            near = [position[m] for m in neighbours[n] if (layer[m] - layer[n]) * toward > 0]
            return sum(near) / len(near) if near else position[n]

        keyed = sorted(((barycenter(n), i, n) for i, n in enumerate(row)))
        row[:] = [n for _, _, n in keyed]
        for i, n in enumerate(row):
            position[n] = i / len(row)

    for _ in range(sweeps):
        for i in range(len(rows) - 2, -1, -1):  # from the top down: follow the layer above
            sweep(rows[i], +1)
        for i in range(1, len(rows)):  # then up: follow the layer below
            sweep(rows[i], -1)
    return rows


def layout(nodes: Sequence[str], dependencies: Mapping[str, Sequence[str]]) -> Layout:
    """Boxes for ``nodes`` (ids, unique) with ``dependencies`` (id -> ids it depends on)."""
    nodes = list(dict.fromkeys(nodes))
    layer = layers(nodes, dependencies)
    rows = order(layer, nodes, dependencies)
    # top to bottom: the highest layer first, each layer's nodes wrapped in rows
    lines: list[tuple[int, list[str]]] = []
    for index in range(len(rows) - 1, -1, -1):
        row = rows[index]
        for start in range(0, len(row), ROW_LIMIT):
            lines.append((index, row[start : start + ROW_LIMIT]))
    widest = max((len(line) for _, line in lines), default=0)
    step_x, step_y = NODE_W + GAP_X, NODE_H + GAP_Y
    placed: dict[str, Placed] = {}
    for y_index, (index, line) in enumerate(lines):
        offset = (widest - len(line)) * step_x // 2
        for x_index, n in enumerate(line):
            placed[n] = Placed(
                n, MARGIN + offset + x_index * step_x, MARGIN + y_index * step_y, index
            )
    width = 2 * MARGIN + max(widest * step_x - GAP_X, 0)
    height = 2 * MARGIN + max(len(lines) * step_y - GAP_Y, 0)
    return Layout(width, height, tuple(placed[n] for n in nodes))
