"""Who may do what: the seed's permission semantics, with every decision explained.

Roles grant verbs: ``viewer`` view and logs, ``operator`` also start, stop and restart,
``admin`` every verb and every custom action. A binding names a group or a user, a role,
and overrides: per component ``allow``/``deny`` lists of verbs, per component action
``allow``/``deny``. Every binding that matches the person and the map applies; the union
of their allows is granted and **an explicit deny anywhere wins**. A custom action (one
that is not a built-in verb) needs ``admin`` or an explicit allow. Default is deny.

Bindings come from a map's own ``permissions:`` (that map only) and from
``policies/*.yaml`` (the maps they name, or every map); groups come from ``policies/``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from reconciler.findings import Location
from reconciler.model.policies import BUILTIN_VERBS, ROLE_VERBS, Binding, PolicyBinding
from reconciler.repo.loader import MapRepo

GROUP_PREFIX = "group:"


@dataclass(frozen=True, slots=True)
class SourcedBinding:
    """A binding, the maps it covers (None: every map) and where it is written."""

    binding: Binding
    maps: frozenset[str] | None
    location: Location

    def covers(self, map_name: str) -> bool:
        return self.maps is None or map_name in self.maps

    def describe(self) -> str:
        b = self.binding
        who = f"group {b.group}" if b.group else f"user {b.user}"
        return f"{self.location}: {who} ({b.role})"


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed or not, the rule that decided, and every binding that matched."""

    allowed: bool
    rule: str
    matched: tuple[str, ...] = ()

    @property
    def verdict(self) -> str:
        return "allow" if self.allowed else "deny"


@dataclass(frozen=True, slots=True)
class Question:
    """May ``subject`` do ``verb`` on ``map/component`` (running ``action`` if it is one)?"""

    subject: str
    verb: str
    map: str
    component: str
    action: str | None = None

    def __str__(self) -> str:
        target = f"{self.map}/{self.component}" + (f"/{self.action}" if self.action else "")
        return f"{self.subject} {self.verb} {target}"


class PolicySet:
    """The bindings and groups of one revision of a map repo."""

    def __init__(self, bindings: Sequence[SourcedBinding], groups: Mapping[str, Iterable[str]]):
        self.bindings = list(bindings)
        self.groups = {
            name: frozenset(m.lower() for m in members) for name, members in groups.items()
        }

    @classmethod
    def from_repo(cls, repo: MapRepo) -> PolicySet:
        bindings: list[SourcedBinding] = []
        groups: dict[str, list[str]] = {}
        for loaded in repo.maps:
            for i, binding in enumerate(loaded.model.permissions):
                where = loaded.doc.locate(("permissions", i))
                bindings.append(SourcedBinding(binding, frozenset({loaded.model.name}), where))
        for policy in repo.policies:
            for name, members in policy.model.groups.items():
                groups.setdefault(name, []).extend(members)
            for i, pb in enumerate(policy.model.permissions):
                where = policy.doc.locate(("permissions", i))
                scope = frozenset(pb.maps) if pb.maps is not None else None
                bindings.append(SourcedBinding(_plain_binding(pb), scope, where))
        return cls(bindings, groups)

    def groups_of(self, subject: str) -> set[str]:
        who = subject.lower()
        return {name for name, members in self.groups.items() if who in members}

    def subjects(self) -> list[str]:
        """Every group and user named in the bindings, and every member of a group."""
        named = {f"{GROUP_PREFIX}{b.binding.group}" for b in self.bindings if b.binding.group}
        named |= {b.binding.user.lower() for b in self.bindings if b.binding.user}
        named |= {f"{GROUP_PREFIX}{g}" for g in self.groups}
        named |= {m for members in self.groups.values() for m in members}
        return sorted(named)

    def matching(self, subject: str, map_name: str) -> list[SourcedBinding]:
        """The bindings that apply to ``subject`` (a person, or ``group:NAME``) on a map."""
        if subject.startswith(GROUP_PREFIX):
            group = subject.removeprefix(GROUP_PREFIX)
            return [b for b in self.bindings if b.covers(map_name) and b.binding.group == group]
        who, groups = subject.lower(), self.groups_of(subject)
        return [
            b
            for b in self.bindings
            if b.covers(map_name)
            and ((b.binding.user or "").lower() == who or (b.binding.group in groups))
        ]

    def decide(self, question: Question) -> Decision:
        """Allowed when a matching binding allows it and none denies it."""
        return decide_among(self.matching(question.subject, question.map), question)


def decide_among(matched: Sequence[SourcedBinding], question: Question) -> Decision:
    """:meth:`PolicySet.decide` once the bindings matching the subject on the map are known."""
    if not matched:
        return Decision(
            False,
            f"default deny: no binding applies to {question.subject} on map {question.map}",
        )
    allows: list[str] = []
    for sourced in matched:
        verdict = _verdict(sourced.binding, question)
        if verdict is None:
            continue
        allowed, why = verdict
        if not allowed:
            return Decision(False, f"{sourced.describe()} {why}", _described(matched))
        allows.append(f"{sourced.describe()} {why}")
    if allows:
        return Decision(True, allows[0], _described(matched))
    what = question.action or question.verb
    kind = "custom action" if _is_custom(question) else "verb"
    return Decision(
        False,
        f"default deny: no matching binding grants the {kind} '{what}' "
        f"on {question.map}/{question.component}",
        _described(matched),
    )


def _verdict(binding: Binding, q: Question) -> tuple[bool, str] | None:
    """What one binding says about the question: (allowed, why), or None if silent.

    Its denies are checked first, as a deny anywhere wins.
    """
    rules = binding.overrides.components.get(q.component)  # type: ignore[call-overload]
    action_rules = binding.overrides.actions.get(q.component, {})  # type: ignore[call-overload]
    if q.action is not None and action_rules.get(q.action) == "deny":
        return False, f"denies action '{q.action}' on {q.component}"
    if rules is not None and q.verb in rules.deny:
        return False, f"denies '{q.verb}' on {q.component}"
    if q.action is not None and action_rules.get(q.action) == "allow":
        return True, f"allows action '{q.action}' on {q.component}"
    if rules is not None and q.verb in rules.allow:
        return True, f"allows '{q.verb}' on {q.component}"
    if binding.role == "admin":
        return True, "grants everything (admin)"
    if not _is_custom(q) and q.verb in ROLE_VERBS[binding.role]:
        return True, f"grants '{q.verb}' ({binding.role})"
    return None


def _is_custom(q: Question) -> bool:
    return q.action is not None and q.action not in BUILTIN_VERBS


def _described(bindings: Sequence[SourcedBinding]) -> tuple[str, ...]:
    return tuple(b.describe() for b in bindings)


def _plain_binding(binding: PolicyBinding) -> Binding:
    return Binding(
        group=binding.group, user=binding.user, role=binding.role, overrides=binding.overrides
    )


def question_for_action(subject: str, map_name: str, component: str, action: str) -> Question:
    """Running a declared action: its name is the verb (start, stop…) or a custom action."""
    return Question(subject, action, map_name, component, action)
