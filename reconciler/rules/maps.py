"""Rules on maps beyond their schema: duplicates, dependencies, host selectors."""

from __future__ import annotations

from collections.abc import Iterator

from reconciler.findings import Finding, Severity
from reconciler.model import Map
from reconciler.repo import Loaded, MapRepo


def duplicate_names(repo: MapRepo) -> Iterator[Finding]:
    """Map names across files; component ids in a map; check and action names in a component."""
    first_file: dict[str, str] = {}
    for loaded in repo.maps:
        name, doc = loaded.model.name, loaded.doc
        if name in first_file:
            yield Finding(
                doc.locate(("name",)),
                Severity.ERROR,
                "duplicate-map",
                f"map '{name}' is already defined in {first_file[name]}",
            )
        first_file.setdefault(name, doc.path)
        seen_ids: dict[str, int] = {}
        for i, component in enumerate(loaded.model.components):
            if component.id in seen_ids:
                line = doc.locate(("components", seen_ids[component.id], "id")).line
                yield Finding(
                    doc.locate(("components", i, "id")),
                    Severity.ERROR,
                    "duplicate-component",
                    f"component id '{component.id}' is already used on line {line}",
                )
            seen_ids.setdefault(component.id, i)
            for list_name in ("checks", "actions"):
                seen: dict[str, int] = {}
                for j, item in enumerate(getattr(component, list_name)):
                    if item.name in seen:
                        line = doc.locate(
                            ("components", i, list_name, seen[item.name], "name")
                        ).line
                        noun = list_name[:-1]
                        yield Finding(
                            doc.locate(("components", i, list_name, j, "name")),
                            Severity.ERROR,
                            f"duplicate-{noun}",
                            f"{noun} '{item.name}' of component '{component.id}' is already "
                            f"defined on line {line}",
                        )
                    seen.setdefault(item.name, j)


def dependencies(repo: MapRepo) -> Iterator[Finding]:
    """Self-dependencies and cycles (errors); undeclared ids are external (warnings)."""
    for loaded in repo.maps:
        yield from _map_dependencies(loaded)


def _map_dependencies(loaded: Loaded[Map]) -> Iterator[Finding]:
    doc, components = loaded.doc, loaded.model.components
    index: dict[str, int] = {c.id: i for i, c in reversed(list(enumerate(components)))}
    edges: dict[str, list[tuple[str, int]]] = {c.id: [] for c in components}
    for i, component in enumerate(components):
        for j, dep in enumerate(component.dependencies):
            where = doc.locate(("components", i, "dependencies", j))
            if dep == component.id:
                yield Finding(
                    where,
                    Severity.ERROR,
                    "self-dependency",
                    f"component '{dep}' depends on itself",
                )
            elif dep not in index:
                yield Finding(
                    where,
                    Severity.WARNING,
                    "external-dependency",
                    f"'{component.id}' depends on '{dep}', which this map does not declare: "
                    "it is treated as an external component",
                )
            elif index[component.id] == i:
                edges[component.id].append((dep, j))
    for cycle, closing_index in _cycles(edges):
        source = cycle[-2]
        where = doc.locate(("components", index[source], "dependencies", closing_index))
        yield Finding(
            where, Severity.ERROR, "dependency-cycle", "dependency cycle: " + " → ".join(cycle)
        )


def _cycles(edges: dict[str, list[tuple[str, int]]]) -> Iterator[tuple[list[str], int]]:
    """Each elementary cycle found by a depth-first walk, once, as ``[a, b, …, a]``.

    Yields the cycle and the index, in its last-but-one node's dependency list, of the
    edge that closes it. Iterative, so a long chain cannot exhaust the stack.
    """
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    reported: set[frozenset[str]] = set()
    for start in edges:
        if state.get(start):
            continue
        path: list[str] = [start]
        iters = [iter(edges[start])]
        state[start] = 1
        while iters:
            step = next(iters[-1], None)
            if step is None:
                state[path.pop()] = 2
                iters.pop()
                continue
            dep, dep_index = step
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    yield cycle, dep_index
            elif not state.get(dep):
                state[dep] = 1
                path.append(dep)
                iters.append(iter(edges[dep]))


def host_selectors(repo: MapRepo) -> Iterator[Finding]:
    """A component whose selector matches no inventory host (only when there is an inventory)."""
    if not repo.inventories:
        return
    hosts = repo.hosts
    for loaded in repo.maps:
        for i, component in enumerate(loaded.model.components):
            selector = component.selector
            if not selector:
                if component.checks or component.actions:
                    yield Finding(
                        loaded.doc.locate(("components", i, "id")),
                        Severity.WARNING,
                        "no-selector",
                        f"component '{component.id}' has checks or actions but no host selector "
                        "('hosts.labels'): they run nowhere",
                    )
                continue
            if not any(host.matches(selector) for host in hosts):
                key = "hosts" if component.hosts else "agent"
                labels = ", ".join(f"{k}={v}" for k, v in selector.items())
                yield Finding(
                    loaded.doc.locate(("components", i, key)),
                    Severity.WARNING,
                    "no-matching-host",
                    f"component '{component.id}' selects no inventory host (labels {labels})",
                )
