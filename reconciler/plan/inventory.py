"""What changed in the inventory, and which hosts each component gains or loses by it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentless.inventory import Host, HostIndex
from reconciler.model import Component
from reconciler.plan.maps import Change, FieldChange, diff_fields
from reconciler.repo.loader import MapRepo


@dataclass(frozen=True, slots=True)
class HostChange:
    name: str
    change: Change
    fields: tuple[FieldChange, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "change": self.change,
            "fields": [f.to_json() for f in self.fields],
        }


@dataclass(frozen=True, slots=True)
class SelectionChange:
    """The hosts a component runs on, gained and lost (a new component gains them all)."""

    map: str
    component: str
    gained: tuple[str, ...]
    lost: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "map": self.map,
            "component": self.component,
            "gained": list(self.gained),
            "lost": list(self.lost),
        }


def diff_hosts(base: Sequence[Host], head: Sequence[Host]) -> list[HostChange]:
    before = {h.name: h for h in base}
    after = {h.name: h for h in head}
    changes = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old is None:
            changes.append(HostChange(name, "added", diff_fields({}, _fields(new))))
        elif new is None:
            changes.append(HostChange(name, "removed"))
        elif old != new:
            changes.append(HostChange(name, "changed", diff_fields(_fields(old), _fields(new))))
    return changes


def _fields(host: Host | None) -> dict[str, Any]:
    assert host is not None
    fields = dataclasses.asdict(host)
    fields.pop("name")
    fields["labels"] = dict(host.labels)
    return fields


def diff_selections(base: MapRepo, head: MapRepo) -> list[SelectionChange]:
    """For every component of either revision, the hosts its selector gains or loses."""
    base_hosts, head_hosts = base.hosts, head.hosts
    same_hosts = base_hosts == head_hosts
    base_select, head_select = _Selecting(base_hosts), _Selecting(head_hosts)
    before, after = _components(base), _components(head)
    changes = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        old_sel = old.selector if old is not None else None
        new_sel = new.selector if new is not None else None
        if same_hosts and old_sel == new_sel:
            continue
        old_names = base_select(old_sel)
        new_names = head_select(new_sel)
        gained = tuple(sorted(new_names - old_names))
        lost = tuple(sorted(old_names - new_names))
        if gained or lost:
            changes.append(SelectionChange(key[0], key[1], gained, lost))
    return changes


def _components(repo: MapRepo) -> dict[tuple[str, str], Component]:
    found: dict[tuple[str, str], Component] = {}
    for loaded in repo.maps:
        for component in loaded.model.components:
            found.setdefault((loaded.model.name, component.id), component)
    return found


class _Selecting:
    """Host names per selector, each distinct selector resolved once."""

    def __init__(self, hosts: Sequence[Host]) -> None:
        self.hosts = HostIndex(hosts)
        self.memo: dict[tuple[tuple[str, str], ...], frozenset[str]] = {}

    def __call__(self, selector: Mapping[str, str] | None) -> frozenset[str]:
        if selector is None:
            return frozenset()
        key = tuple(sorted(selector.items()))
        if key not in self.memo:
            self.memo[key] = frozenset(h.name for h in self.hosts.select(selector))
        return self.memo[key]
