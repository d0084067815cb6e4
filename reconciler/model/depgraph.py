"""The dependency graph of a map: cycles and impact, each in one linear pass.

A pull request chooses the graph, so nothing here may grow faster than the number of
components plus dependencies, nor recurse (a 10,000-deep chain is a valid map):

- :func:`strongly_connected` finds the groups of components that depend on one another
  (Tarjan's algorithm, with an explicit stack); :func:`cycle_through` gives one shortest
  cycle inside such a group, so a report names one cycle per group, not one per edge;
- :func:`root_causes` says, for every component at once, which failing components below
  it explain its impact, keeping at most a few ids per component.

A graph is a mapping from a node to the nodes it depends on (its edges); a target that
is not a key of the mapping (an external component) has no edges of its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

Graph = Mapping[str, Sequence[str]]

SHOWN_IDS = 10
"""How many ids a message or a status field lists before it says how many more there are."""


def strongly_connected(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one node, each once.

    Nodes of a component are listed in the graph's order; components in the order of
    their first node. Iterative Tarjan: O(nodes + edges), no recursion.
    """
    index_of: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for start in graph:
        if start in index_of:
            continue
        index_of[start] = low[start] = len(index_of)
        stack.append(start)
        on_stack.add(start)
        work: list[tuple[str, Iterable[str]]] = [(start, iter(graph[start]))]
        while work:
            node, edges = work[-1]
            descended = False
            for dep in edges:
                if dep not in graph:
                    continue
                if dep not in index_of:
                    index_of[dep] = low[dep] = len(index_of)
                    stack.append(dep)
                    on_stack.add(dep)
                    work.append((dep, iter(graph[dep])))
                    descended = True
                    break
                if dep in on_stack:
                    low[node] = min(low[node], index_of[dep])
            if descended:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index_of[node]:
                members: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                if len(members) > 1:
                    found.append(members)
    order = {node: i for i, node in enumerate(graph)}
    for members in found:
        members.sort(key=order.__getitem__)
    found.sort(key=lambda members: order[members[0]])
    return found


def cycle_through(graph: Graph, members: Sequence[str]) -> list[str]:
    """A shortest cycle from ``members[0]`` back to it, inside ``members``: ``[a, …, a]``.

    ``members`` is a strongly connected component (so such a cycle exists); the search is
    a breadth-first walk over the component's own edges, linear in them.
    """
    inside = set(members)
    start = members[0]
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for dep in graph[node]:
            if dep == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if dep in inside and dep not in parent:
                parent[dep] = node
                queue.append(dep)
    raise ValueError(f"{start!r} is on no cycle inside the given component")


def capped(ids: Sequence[str], *, shown: int = SHOWN_IDS, sep: str = ", ") -> str:
    """``ids`` joined by ``sep``; past ``shown`` of them, the rest as "… and N more"."""
    if len(ids) <= shown:
        return sep.join(ids)
    return sep.join([*ids[:shown], f"… and {len(ids) - shown} more"])


@dataclass(frozen=True)
class Impact:
    """Why a component is impacted: the failing components below it, at most a few named."""

    causes: tuple[str, ...] = ()
    """Failing components it depends on, directly or not: direct ones first, capped."""
    more: bool = False
    """True when more failing components lie below it than ``causes`` names."""

    def __bool__(self) -> bool:
        return bool(self.causes)


def root_causes(
    graph: Graph, failing: Callable[[str], bool], *, keep: int = SHOWN_IDS
) -> dict[str, Impact]:
    """Every node's :class:`Impact`, in one pass over the graph in dependency order.

    A node's causes are its failing direct dependencies, then its dependencies' causes,
    without repeats, up to ``keep`` ids: O((nodes + edges) · keep). Targets that are not
    keys of ``graph`` (external components) are not observed and never causes. Nodes on a
    cycle (an invalid map) see the causes of the part of the cycle visited before them.
    """
    impact: dict[str, Impact] = {}
    for node in _dependencies_first(graph):
        deps = [d for d in graph[node] if d in graph and d != node]
        candidates = [[d for d in deps if failing(d)]]
        candidates += [list(impact[d].causes) for d in deps if d in impact]
        more = any(impact[d].more for d in deps if d in impact)
        causes: list[str] = []
        seen = {node}
        for group in candidates:
            for cause in group:
                if cause in seen:
                    continue
                if len(causes) == keep:
                    more = True
                    break
                seen.add(cause)
                causes.append(cause)
            if more and len(causes) == keep:
                break
        impact[node] = Impact(tuple(causes), more)
    return impact


def _dependencies_first(graph: Graph) -> list[str]:
    """Every node after the nodes it depends on (post-order of an iterative walk)."""
    done: set[str] = set()
    order: list[str] = []
    for start in graph:
        if start in done:
            continue
        done.add(start)
        work: list[tuple[str, Iterable[str]]] = [(start, iter(graph[start]))]
        while work:
            node, edges = work[-1]
            for dep in edges:
                if dep in graph and dep not in done:
                    done.add(dep)
                    work.append((dep, iter(graph[dep])))
                    break
            else:
                work.pop()
                order.append(node)
    return order
