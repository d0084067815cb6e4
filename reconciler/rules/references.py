"""Rules on references between files: bindings, policies, requests, inventory hosts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from agentless.inventory import HostIndex
from reconciler.findings import Finding, Severity
from reconciler.model import Binding, Map
from reconciler.model.depgraph import capped
from reconciler.model.policies import signer_problem
from reconciler.model.vocabulary import ALL_COMPONENTS, WHOLE_MAP_VERBS
from reconciler.repo.loader import MapRepo
from reconciler.repo.yamlparse import YamlDocument, YamlPath


def map_permissions(repo: MapRepo) -> Iterator[Finding]:
    """A map's own bindings name only its components and their actions."""
    for loaded in repo.maps:
        for i, binding in enumerate(loaded.model.permissions):
            yield from _binding_targets(binding, [loaded.model], loaded.doc, ("permissions", i))


def policy_bindings(repo: MapRepo) -> Iterator[Finding]:
    """Policies name known maps, and components and actions of those maps."""
    maps = {m.model.name: m.model for m in repo.maps}
    for loaded in repo.policies:
        for i, binding in enumerate(loaded.model.permissions):
            base: YamlPath = ("permissions", i)
            in_scope = list(maps.values())
            if binding.maps is not None:
                in_scope = []
                for j, name in enumerate(binding.maps):
                    if name in maps:
                        in_scope.append(maps[name])
                    elif name not in repo.unloaded_maps:
                        yield Finding(
                            loaded.doc.locate((*base, "maps", j)),
                            Severity.ERROR,
                            "unknown-map",
                            f"policy names map '{name}', which no file in maps/ defines",
                        )
            yield from _binding_targets(binding, in_scope, loaded.doc, base)


def _binding_targets(
    binding: Binding, maps: Sequence[Map], doc: YamlDocument, base: YamlPath
) -> Iterator[Finding]:
    if not maps:  # its maps are unknown or broken, which is reported already
        return
    where = " or ".join(f"'{m.name}'" for m in maps[:3]) + (" …" if len(maps) > 3 else "")
    for component_id in binding.overrides.components:
        if not any(m.component(component_id) for m in maps):
            yield Finding(
                doc.locate((*base, "overrides", "components", component_id)),
                Severity.ERROR,
                "unknown-component",
                f"binding names component '{component_id}', not in map {where}",
            )
    for component_id, actions in binding.overrides.actions.items():
        components = [c for m in maps if (c := m.component(component_id))]
        path = (*base, "overrides", "actions", component_id)
        if not components:
            yield Finding(
                doc.locate(path),
                Severity.ERROR,
                "unknown-component",
                f"binding names component '{component_id}', not in map {where}",
            )
            continue
        for action in actions:
            if not any(c.action(action) for c in components):
                yield Finding(
                    doc.locate((*path, action)),
                    Severity.ERROR,
                    "unknown-action",
                    f"component '{component_id}' has no action '{action}'",
                )


def groups(repo: MapRepo) -> Iterator[Finding]:
    """A group is defined once; a binding to a group nobody defined is suspicious."""
    defined: dict[str, str] = {}
    for loaded in repo.policies:
        for name in loaded.model.groups:
            if name in defined:
                yield Finding(
                    loaded.doc.locate(("groups", name)),
                    Severity.ERROR,
                    "duplicate-group",
                    f"group '{name}' is already defined in {defined[name]}",
                )
            defined.setdefault(name, loaded.doc.path)
    if not defined:
        return
    sources: list[tuple[YamlDocument, Sequence[Binding]]]
    sources = [(m.doc, m.model.permissions) for m in repo.maps]
    sources += [(p.doc, p.model.permissions) for p in repo.policies]
    for doc, bindings in sources:
        for i, binding in enumerate(bindings):
            if binding.group and binding.group not in defined:
                yield Finding(
                    doc.locate(("permissions", i, "group")),
                    Severity.WARNING,
                    "unknown-group",
                    f"group '{binding.group}' has no members: no file in policies/ defines it",
                )


def requests(repo: MapRepo) -> Iterator[Finding]:
    """A request names a map, a component of it, an action it declares, and its hosts."""
    maps = {m.model.name: m.model for m in repo.maps}
    hosts = {str(h.name): h for h in repo.hosts}
    index = HostIndex(repo.hosts)
    for loaded in repo.requests:
        request, doc = loaded.model, loaded.doc
        target = maps.get(request.map)
        if target is None and request.map in repo.unloaded_maps:
            continue
        if target is None:
            yield Finding(
                doc.locate(("map",)),
                Severity.ERROR,
                "unknown-map",
                f"request names map '{request.map}', which no file in maps/ defines",
            )
            continue
        if request.component == ALL_COMPONENTS:
            if request.action not in WHOLE_MAP_VERBS:
                yield Finding(
                    doc.locate(("action",)),
                    Severity.ERROR,
                    "bad-whole-map-action",
                    f"component '*' runs start, stop or restart over the whole map, "
                    f"not '{request.action}'",
                )
            elif not any(c.action(request.action) for c in target.components):
                yield Finding(
                    doc.locate(("action",)),
                    Severity.ERROR,
                    "unknown-action",
                    f"no component of map '{target.name}' has an action '{request.action}'",
                )
            # distinct selectors: a map's components share few, and each host is tried on each
            selectors = list(
                {
                    tuple(sorted(c.selector.items())): c.selector
                    for c in target.components
                    if c.selector and c.action(request.action)
                }.values()
            )
        else:
            component = target.component(request.component)
            if component is None:
                yield Finding(
                    doc.locate(("component",)),
                    Severity.ERROR,
                    "unknown-component",
                    f"map '{target.name}' has no component '{request.component}'",
                )
                continue
            if component.action(request.action) is None:
                known = capped([a.name for a in component.actions]) or "none"
                yield Finding(
                    doc.locate(("action",)),
                    Severity.ERROR,
                    "unknown-action",
                    f"component '{component.id}' has no action '{request.action}' "
                    f"(it has: {known})",
                )
            selectors = [component.selector]
        selectable: set[str] | None = None
        for j, name in enumerate(request.hosts or []):
            host = hosts.get(name)
            if host is None:
                yield Finding(
                    doc.locate(("hosts", j)),
                    Severity.ERROR,
                    "unknown-host",
                    f"request names host '{name}', which no file in inventory/ defines",
                )
            else:
                if selectable is None:  # the hosts of every selector, once per request
                    selectable = {str(h.name) for sel in selectors for h in index.select(sel)}
                if name in selectable:
                    continue
                yield Finding(
                    doc.locate(("hosts", j)),
                    Severity.ERROR,
                    "host-not-selected",
                    f"host '{name}' is not one of the hosts of '{request.component}'",
                )


def inventory_hosts(repo: MapRepo) -> Iterator[Finding]:
    """Host names are unique across every inventory file."""
    first: dict[str, str] = {}
    for loaded in repo.inventories:
        for i, entry in enumerate(loaded.model.hosts):
            where = loaded.doc.locate(("hosts", i, "name"))
            if entry.name in first:
                yield Finding(
                    where,
                    Severity.ERROR,
                    "duplicate-host",
                    f"host '{entry.name}' is already defined at {first[entry.name]}",
                )
            first.setdefault(entry.name, f"{where.file}:{where.line}")


def signers(repo: MapRepo) -> Iterator[Finding]:
    """A signer whose identity or key cannot verify a commit is said so, not skipped silently."""
    for loaded in repo.policies:
        for i, signer in enumerate(loaded.model.signers):
            problem = signer_problem(signer.identity, signer.key)
            if problem is not None:
                yield Finding(
                    loaded.doc.locate(("signers", i)),
                    Severity.WARNING,
                    "unusable-signer",
                    f"this signer can verify no commit: {problem}",
                )
