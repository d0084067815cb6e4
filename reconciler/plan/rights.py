"""Who gains or loses which right: the policy engine asked at both revisions.

A right is ``(subject, verb, map, component, action)``: for every component, the built-in
verbs (asked as the action of that name when the component declares one, as
``opsmap policy can`` and the judge do) and each custom action. Subjects are every group
(``group:NAME``) and user named in the policies and every member of a group, at either
revision.

:func:`naive_rights` asks :meth:`PolicySet.decide` every question of a revision; on a large
repo that is millions of questions. :func:`diff_rights` gives the same answer by asking only
what can differ: a decision depends on the bindings that match the subject on the map
(their order aside), on the component's id and on the question. So for each subject and
map it compares the matching bindings of both revisions and, where they are the same, asks
only about the components whose questions changed. Questions are asked of a
:class:`PolicySet` holding just those bindings, which decides exactly as the whole set does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.model import Component
from reconciler.model.policies import BUILTIN_VERBS
from reconciler.policy.engine import GROUP_PREFIX, PolicySet, Question, SourcedBinding
from reconciler.repo.loader import MapRepo

VERB_ORDER = ("view", "logs", "start", "stop", "restart")
QuestionKey = tuple[str, str | None]
"""(verb, action): the action is the verb's own name when the component declares it."""


@dataclass(frozen=True, slots=True, order=True)
class Right:
    map: str
    component: str
    verb: str
    action: str
    subject: str

    @property
    def target(self) -> str:
        return f"{self.map}/{self.component}" + (f"/{self.action}" if self.action else "")

    def question(self) -> Question:
        return Question(self.subject, self.verb, self.map, self.component, self.action or None)


@dataclass(frozen=True, slots=True)
class RightChange:
    right: Right
    rule: str
    """Why, at head: the rule that now allows it, or that now denies it."""

    def to_json(self) -> dict[str, Any]:
        r = self.right
        return {
            "subject": r.subject,
            "verb": r.verb,
            "map": r.map,
            "component": r.component,
            "action": r.action or None,
            "target": r.target,
            "rule": self.rule,
        }


@dataclass(frozen=True, slots=True)
class RightsDiff:
    gained: tuple[RightChange, ...]
    lost: tuple[RightChange, ...]


def questions(component: Component) -> list[QuestionKey]:
    """Every question about one component: built-in verbs, then its custom actions."""
    asked: list[QuestionKey] = [(v, v if component.action(v) else None) for v in VERB_ORDER]
    asked += [(a.name, a.name) for a in component.actions if a.name not in BUILTIN_VERBS]
    return asked


Universe = dict[str, dict[str, frozenset[QuestionKey]]]


def universe(repo: MapRepo) -> Universe:
    """Per map name, per component id, the questions asked about it."""
    found: Universe = {}
    for loaded in repo.maps:
        components = found.setdefault(loaded.model.name, {})
        for component in loaded.model.components:
            asked = frozenset(questions(component))
            components[component.id] = components.get(component.id, frozenset()) | asked
    return found


def naive_rights(repo: MapRepo) -> set[Right]:
    """Every right of a revision: ``decide`` for every subject and question (slow, plain)."""
    policies = PolicySet.from_repo(repo)
    allowed = set()
    for subject in policies.subjects():
        for name, components in universe(repo).items():
            for cid, asked in components.items():
                for verb, action in asked:
                    if policies.decide(Question(subject, verb, name, cid, action)).allowed:
                        allowed.add(Right(name, cid, verb, action or "", subject))
    return allowed


def naive_diff(base: MapRepo, head: MapRepo) -> tuple[set[Right], set[Right]]:
    """(gained, lost), by :func:`naive_rights` of both revisions."""
    before, after = naive_rights(base), naive_rights(head)
    return after - before, before - after


class _Revision:
    """One revision's policies, indexed by who a binding names and the maps it covers."""

    def __init__(self, repo: MapRepo) -> None:
        self.policies = PolicySet.from_repo(repo)
        self.universe = universe(repo)
        self.by_group: dict[str, list[int]] = {}
        self.by_user: dict[str, list[int]] = {}
        for index, sourced in enumerate(self.policies.bindings):
            b = sourced.binding
            if b.group is not None:
                self.by_group.setdefault(b.group, []).append(index)
            if b.user is not None:
                self.by_user.setdefault(b.user.lower(), []).append(index)
        self._views: dict[str, _SubjectView] = {}

    def view(self, subject: str) -> _SubjectView:
        """The bindings that can match ``subject``, as ``PolicySet.matching`` selects them."""
        found = self._views.get(subject)
        if found is None:
            if subject.startswith(GROUP_PREFIX):
                indexes = self.by_group.get(subject.removeprefix(GROUP_PREFIX), [])
            else:
                groups = self.policies.groups_of(subject)
                indexes = sorted(
                    {
                        *self.by_user.get(subject.lower(), []),
                        *(i for g in groups for i in self.by_group.get(g, [])),
                    }
                )
            found = _SubjectView([self.policies.bindings[i] for i in indexes])
            self._views[subject] = found
        return found

    def allowed(
        self,
        subject: str,
        map_name: str,
        matched: Sequence[SourcedBinding],
        only: Iterable[str] | None,
    ) -> set[Right]:
        components = self.universe.get(map_name)
        if not matched or components is None:
            return set()
        deciding = PolicySet(matched, self.policies.groups)
        chosen = components if only is None else [c for c in only if c in components]
        return {
            Right(map_name, cid, verb, action or "", subject)
            for cid in chosen
            for verb, action in components[cid]
            if deciding.decide(Question(subject, verb, map_name, cid, action)).allowed
        }

    def rule(self, right: Right) -> str:
        matched = self.view(right.subject).on(right.map)
        return PolicySet(matched, self.policies.groups).decide(right.question()).rule


class _SubjectView:
    """One subject's bindings, and per map those that cover it (in the bindings' order)."""

    def __init__(self, bindings: list[SourcedBinding]) -> None:
        self.bindings = bindings
        self.everywhere = any(b.maps is None for b in bindings)
        self.maps = {m for b in bindings if b.maps is not None for m in b.maps}
        self._on: dict[str, list[SourcedBinding]] = {}

    def on(self, map_name: str) -> list[SourcedBinding]:
        found = self._on.get(map_name)
        if found is None:
            if not self.everywhere and map_name not in self.maps:
                return []
            found = self._on[map_name] = [b for b in self.bindings if b.covers(map_name)]
        return found


def diff_rights(base: MapRepo, head: MapRepo) -> RightsDiff:
    """Rights gained and lost from ``base`` to ``head``; equal to :func:`naive_diff`."""
    before, after = _Revision(base), _Revision(head)
    subjects = sorted(set(before.policies.subjects()) | set(after.policies.subjects()))
    all_maps = before.universe.keys() | after.universe.keys()
    changed = _changed_components(before.universe, after.universe)
    gained: set[Right] = set()
    lost: set[Right] = set()
    for subject in subjects:
        old_view, new_view = before.view(subject), after.view(subject)
        if old_view.everywhere or new_view.everywhere:
            maps: Iterable[str] = all_maps
        else:
            maps = (old_view.maps | new_view.maps) & all_maps
        for map_name in maps:
            old_matched, new_matched = old_view.on(map_name), new_view.on(map_name)
            if not old_matched and not new_matched:
                continue
            only: Iterable[str] | None = None
            if [b.binding for b in old_matched] == [b.binding for b in new_matched]:
                only = changed.get(map_name)
                if not only:
                    continue
            was = before.allowed(subject, map_name, old_matched, only)
            now = after.allowed(subject, map_name, new_matched, only)
            gained |= now - was
            lost |= was - now
    return RightsDiff(
        tuple(RightChange(r, after.rule(r)) for r in sorted(gained)),
        tuple(RightChange(r, after.rule(r)) for r in sorted(lost)),
    )


def _changed_components(before: Universe, after: Universe) -> dict[str, set[str]]:
    """Per map, the components whose questions differ (present at one revision only, too)."""
    changed: dict[str, set[str]] = {}
    for name in before.keys() | after.keys():
        old, new = before.get(name, {}), after.get(name, {})
        ids = {cid for cid in old.keys() | new.keys() if old.get(cid) != new.get(cid)}
        if ids:
            changed[name] = ids
    return changed


# -- what changed in the policies themselves ------------------------------------------


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
