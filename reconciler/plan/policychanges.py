"""What changed in the policies themselves: groups and their members, bindings."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.policy.engine import PolicySet, SourcedBinding
from reconciler.repo.loader import MapRepo


@dataclass(frozen=True, slots=True)
class GroupChange:
    name: str
    change: str
    members_added: tuple[str, ...] = ()
    members_removed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "change": self.change,
            "members_added": list(self.members_added),
            "members_removed": list(self.members_removed),
        }


@dataclass(frozen=True, slots=True)
class BindingChange:
    change: str
    description: str
    location: str

    def to_json(self) -> dict[str, Any]:
        return {"change": self.change, "binding": self.description, "location": self.location}


def diff_groups(base: MapRepo, head: MapRepo) -> list[GroupChange]:
    before = PolicySet.from_repo(base).groups
    after = PolicySet.from_repo(head).groups
    changes = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        kind = "added" if old is None else "removed" if new is None else "changed"
        old, new = old or frozenset(), new or frozenset()
        changes.append(GroupChange(name, kind, tuple(sorted(new - old)), tuple(sorted(old - new))))
    return changes


def diff_bindings(base: MapRepo, head: MapRepo) -> list[BindingChange]:
    """Bindings (of maps and of policies) added or removed, compared by what they say."""
    before = _described(PolicySet.from_repo(base).bindings)
    after = _described(PolicySet.from_repo(head).bindings)
    old_count = Counter(text for text, _ in before)
    new_count = Counter(text for text, _ in after)
    added, removed = new_count - old_count, old_count - new_count
    changes = []
    for text, where in after:
        if added[text] > 0:
            added[text] -= 1
            changes.append(BindingChange("added", text, where))
    for text, where in before:
        if removed[text] > 0:
            removed[text] -= 1
            changes.append(BindingChange("removed", text, f"{where} (base)"))
    return changes


def _described(bindings: Sequence[SourcedBinding]) -> list[tuple[str, str]]:
    return [(describe_binding(b), str(b.location)) for b in bindings]


def describe_binding(sourced: SourcedBinding) -> str:
    b = sourced.binding
    who = f"group {b.group}" if b.group else f"user {b.user}"
    scope = "every map" if sourced.maps is None else "map " + ", ".join(sorted(sourced.maps))
    text = f"{who}: {b.role} on {scope}"
    rules = [
        f"{component} {verb} {', '.join(verbs)}"
        for component, rule in sorted(b.overrides.components.items())
        for verb, verbs in (("allow", rule.allow), ("deny", rule.deny))
        if verbs
    ]
    rules += [
        f"{component} {decision} action {action}"
        for component, actions in sorted(b.overrides.actions.items())
        for action, decision in sorted(actions.items())
    ]
    return text + (f" ({'; '.join(rules)})" if rules else "")
