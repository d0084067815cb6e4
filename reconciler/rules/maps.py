"""Rules on maps beyond their schema: duplicates, dependencies, host selectors, check count."""

from __future__ import annotations

from collections.abc import Iterator

from agentless.inventory import HostIndex
from reconciler.findings import Finding, Severity
from reconciler.model import Map
from reconciler.model.depgraph import SHOWN_IDS, capped, cycle_through, strongly_connected
from reconciler.repo.loader import Loaded, MapRepo


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
    graph: dict[str, list[str]] = {c.id: [] for c in components}
    edge_index: dict[tuple[str, str], int] = {}
    for i, component in enumerate(components):
        for j, dep in enumerate(component.dependencies):
            if dep == component.id:
                yield Finding(
                    doc.locate(("components", i, "dependencies", j)),
                    Severity.ERROR,
                    "self-dependency",
                    f"component '{dep}' depends on itself",
                )
            elif dep not in index:
                yield Finding(
                    doc.locate(("components", i, "dependencies", j)),
                    Severity.WARNING,
                    "external-dependency",
                    f"'{component.id}' depends on '{dep}', which this map does not declare: "
                    "it is treated as an external component",
                )
            elif index[component.id] == i and (component.id, dep) not in edge_index:
                graph[component.id].append(dep)
                edge_index[(component.id, dep)] = j
    for members in strongly_connected(graph):
        cycle = cycle_through(graph, members)
        source = cycle[-2]
        closing = edge_index[(source, cycle[-1])]
        message = "dependency cycle: " + _cycle_text(cycle)
        if len(members) > len(cycle) - 1:
            message += (
                f" ({len(members)} components depend on one another through cycles: "
                f"{capped(members)})"
            )
        yield Finding(
            doc.locate(("components", index[source], "dependencies", closing)),
            Severity.ERROR,
            "dependency-cycle",
            message,
        )


def _cycle_text(cycle: list[str]) -> str:
    """``a → b → a``; a long cycle shows its first ids, how many more, and its end."""
    if len(cycle) <= SHOWN_IDS + 1:
        return " → ".join(cycle)
    hidden = len(cycle) - 1 - SHOWN_IDS
    return " → ".join([*cycle[:SHOWN_IDS], f"… {hidden} more …", cycle[-1]])


def host_selectors(repo: MapRepo) -> Iterator[Finding]:
    """A component whose selector matches no inventory host (only when there is an inventory)."""
    if not repo.inventories:
        return
    hosts = HostIndex(repo.hosts)
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
            if not hosts.select(selector):
                key = "hosts" if component.hosts else "agent"
                labels = ", ".join(f"{k}={v}" for k, v in selector.items())
                yield Finding(
                    loaded.doc.locate(("components", i, key)),
                    Severity.WARNING,
                    "no-matching-host",
                    f"component '{component.id}' selects no inventory host (labels {labels})",
                )


def completion_checks(repo: MapRepo) -> Iterator[Finding]:
    """A ``completion_check`` is polled only after an ``async`` action: elsewhere it would
    look like a guarantee that nothing gives."""
    for loaded in repo.maps:
        for i, component in enumerate(loaded.model.components):
            for j, action in enumerate(component.actions):
                if action.completion_check is not None and not action.is_async:
                    yield Finding(
                        loaded.doc.locate(("components", i, "actions", j, "completion_check")),
                        Severity.WARNING,
                        "completion-check-unused",
                        f"action '{action.name}' of '{component.id}' has a completion_check "
                        "but is not async: the check never runs (add 'async: true', or "
                        "remove the check)",
                    )


MAX_SCHEDULED_CHECKS = 100_000
"""The most checks one revision may schedule: components × matching hosts × checks."""


def scheduled_check_count(repo: MapRepo) -> Iterator[Finding]:
    """A revision scheduling more than :data:`MAX_SCHEDULED_CHECKS` checks: an error per map.

    Each scheduled check is a task of the reconciler, a row of its state and of the status
    document, so their number is the size of what a revision makes it keep. Counted once
    per distinct selector, without building them.
    """
    hosts = HostIndex(repo.hosts)
    counts = []
    for loaded in repo.maps:
        count = sum(
            len(component.checks) * len(hosts.select(component.selector))
            for component in loaded.model.components
            if component.checks
        )
        counts.append((loaded, count))
    total = sum(count for _, count in counts)
    if total <= MAX_SCHEDULED_CHECKS:
        return
    for loaded, count in counts:
        if count:
            yield Finding(
                loaded.doc.locate(()),
                Severity.ERROR,
                "too-many-checks",
                f"this revision would schedule {total:,} checks (each check of a component "
                f"on each host it selects), more than {MAX_SCHEDULED_CHECKS:,}; map "
                f"'{loaded.model.name}' schedules {count:,} of them",
            )
