"""What changed in the maps: components, checks, actions and dependencies, field by field."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from reconciler.model import Component, Map
from reconciler.repo.loader import Loaded, MapRepo

Change = Literal["added", "removed", "changed"]
JsonValue = Any

_COMPONENT_OWN = {"id", "checks", "actions", "dependencies", "agent", "hosts"}


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field (a dotted path, e.g. ``config.url``) and its value before and after."""

    path: str
    old: JsonValue
    new: JsonValue

    def to_json(self) -> dict[str, JsonValue]:
        return {"path": self.path, "old": self.old, "new": self.new}


@dataclass(frozen=True, slots=True)
class ItemChange:
    """A check or an action added, removed, or changed (with its changed fields)."""

    name: str
    change: Change
    fields: tuple[FieldChange, ...] = ()

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "name": self.name,
            "change": self.change,
            "fields": [f.to_json() for f in self.fields],
        }


@dataclass(frozen=True, slots=True)
class ComponentChange:
    id: str
    change: Change
    location: str
    name: str | None = None
    fields: tuple[FieldChange, ...] = ()
    checks: tuple[ItemChange, ...] = ()
    actions: tuple[ItemChange, ...] = ()
    dependencies_added: tuple[str, ...] = ()
    dependencies_removed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "id": self.id,
            "change": self.change,
            "location": self.location,
            "name": self.name,
            "fields": [f.to_json() for f in self.fields],
            "checks": [c.to_json() for c in self.checks],
            "actions": [a.to_json() for a in self.actions],
            "dependencies_added": list(self.dependencies_added),
            "dependencies_removed": list(self.dependencies_removed),
        }


@dataclass(frozen=True, slots=True)
class MapChange:
    name: str
    change: Change
    location: str
    fields: tuple[FieldChange, ...] = ()
    components: tuple[ComponentChange, ...] = ()
    permissions_changed: bool = False

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "name": self.name,
            "change": self.change,
            "location": self.location,
            "fields": [f.to_json() for f in self.fields],
            "permissions_changed": self.permissions_changed,
            "components": [c.to_json() for c in self.components],
        }


def diff_maps(base: MapRepo, head: MapRepo) -> list[MapChange]:
    """Every map added, removed or changed between ``base`` and ``head``, by name."""
    before, after = _by_name(base.maps), _by_name(head.maps)
    changes: list[MapChange] = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old is not None and new is not None and (old is new or old.model == new.model):
            continue
        changes.append(_map_change(name, old, new))
    return changes


def _by_name(maps: Sequence[Loaded[Map]]) -> dict[str, Loaded[Map]]:
    found: dict[str, Loaded[Map]] = {}
    for loaded in maps:
        found.setdefault(loaded.model.name, loaded)
    return found


def _map_change(name: str, old: Loaded[Map] | None, new: Loaded[Map] | None) -> MapChange:
    if new is None:
        assert old is not None
        return MapChange(
            name,
            "removed",
            str(old.doc.locate()),
            components=tuple(
                _whole_component(c, "removed", str(old.doc.locate(("components", i))))
                for i, c in enumerate(old.model.components)
            ),
        )
    if old is None:
        return MapChange(
            name,
            "added",
            str(new.doc.locate()),
            components=tuple(
                _whole_component(c, "added", str(new.doc.locate(("components", i))))
                for i, c in enumerate(new.model.components)
            ),
        )
    fields = diff_fields(
        old.model.model_dump(mode="json", include={"version", "description"}),
        new.model.model_dump(mode="json", include={"version", "description"}),
    )
    before = {c.id: c for c in old.model.components}
    after = {c.id: (i, c) for i, c in enumerate(new.model.components)}
    components: list[ComponentChange] = []
    for cid, (index, component) in after.items():
        where = str(new.doc.locate(("components", index)))
        previous = before.get(cid)
        if previous is None:
            components.append(_whole_component(component, "added", where))
        elif previous != component:
            components.append(_changed_component(previous, component, where))
    for index, component in enumerate(old.model.components):
        if component.id not in after:
            where = f"{old.doc.locate(('components', index))} (base)"
            components.append(_whole_component(component, "removed", where))
    return MapChange(
        name,
        "changed",
        str(new.doc.locate()),
        fields,
        tuple(components),
        permissions_changed=old.model.permissions != new.model.permissions,
    )


def _whole_component(component: Component, change: Change, where: str) -> ComponentChange:
    return ComponentChange(
        component.id,
        change,
        where,
        component.name,
        checks=tuple(ItemChange(c.name, change) for c in component.checks),
        actions=tuple(ItemChange(a.name, change) for a in component.actions),
        dependencies_added=tuple(component.dependencies) if change == "added" else (),
        dependencies_removed=tuple(component.dependencies) if change == "removed" else (),
    )


def _changed_component(old: Component, new: Component, where: str) -> ComponentChange:
    old_deps, new_deps = set(old.dependencies), set(new.dependencies)
    return ComponentChange(
        new.id,
        "changed",
        where,
        new.name,
        fields=diff_fields(_component_fields(old), _component_fields(new)),
        checks=_diff_items(old.checks, new.checks),
        actions=_diff_items(old.actions, new.actions),
        dependencies_added=tuple(d for d in new.dependencies if d not in old_deps),
        dependencies_removed=tuple(d for d in old.dependencies if d not in new_deps),
    )


def _component_fields(component: Component) -> dict[str, JsonValue]:
    fields = component.model_dump(mode="json", exclude=_COMPONENT_OWN)
    fields["selector"] = component.selector
    return fields


def _diff_items(old: Iterable[BaseModel], new: Iterable[BaseModel]) -> tuple[ItemChange, ...]:
    """Checks or actions by name: added, removed, changed with their fields."""
    before = {getattr(item, "name"): item for item in old}  # noqa: B009
    after = {getattr(item, "name"): item for item in new}  # noqa: B009
    changes: list[ItemChange] = []
    for name, item in after.items():
        previous = before.get(name)
        if previous is None:
            changes.append(ItemChange(name, "added"))
        elif previous != item:
            fields = diff_fields(_dump(previous), _dump(item))
            changes.append(ItemChange(name, "changed", fields))
    changes.extend(ItemChange(name, "removed") for name in before if name not in after)
    return tuple(changes)


def _dump(item: BaseModel) -> dict[str, JsonValue]:
    return item.model_dump(mode="json", by_alias=True, exclude={"name"})


def diff_fields(
    old: Mapping[str, JsonValue], new: Mapping[str, JsonValue]
) -> tuple[FieldChange, ...]:
    """The leaves that differ between two JSON-ready mappings, as dotted paths."""
    flat_old, flat_new = dict(_flatten(old)), dict(_flatten(new))
    return tuple(
        FieldChange(path, flat_old.get(path), flat_new.get(path))
        for path in sorted(flat_old.keys() | flat_new.keys())
        if flat_old.get(path) != flat_new.get(path)
    )


def _flatten(value: JsonValue, prefix: str = "") -> Iterable[tuple[str, JsonValue]]:
    """Leaves of nested mappings; a list is a leaf unless it holds mappings."""
    if isinstance(value, Mapping):
        if not value and prefix:
            yield prefix, {}
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and any(isinstance(item, Mapping) for item in value):
        for index, item in enumerate(value):
            yield from _flatten(item, f"{prefix}[{index}]")
    else:
        yield prefix, value
