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

import heapq
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.model import Component
from reconciler.model.vocabulary import BUILTIN_VERBS, VERBS
from reconciler.policy.engine import GROUP_PREFIX, PolicySet, Question, SourcedBinding, decide_among
from reconciler.repo.loader import MapRepo

MAX_RIGHTS_LISTED = 1_000
"""Rights listed in each direction, first in order; the counts are always whole."""
MAX_GROUPS_LISTED = 100
MAX_SUBJECTS_NAMED = 5
MAX_MAPS_NAMED = 5
CUSTOM = "custom actions"
"""The kind of every custom action: a binding decides them all alike, overrides aside."""
KINDS = (*VERBS, CUSTOM)
Change = tuple[str, str, str]
"""(component, verb, action or ""): a right without its map and subject."""
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
class RightsGroup:
    """Subjects with the same bindings at both revisions, and the rights each gains (or loses)."""

    change: str
    """``gained`` or ``lost``."""
    subjects: tuple[str, ...]
    """The first :data:`MAX_SUBJECTS_NAMED` of them, in order."""
    subject_count: int
    maps: tuple[str, ...]
    """The first :data:`MAX_MAPS_NAMED` maps concerned, in order."""
    map_count: int
    rights_each: int
    verbs: tuple[str, ...]
    """The kinds of verb concerned (custom actions as one, ``custom actions``)."""

    @property
    def rights(self) -> int:
        return self.subject_count * self.rights_each

    def to_json(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "subjects": list(self.subjects),
            "subject_count": self.subject_count,
            "maps": list(self.maps),
            "map_count": self.map_count,
            "rights_each": self.rights_each,
            "rights": self.rights,
            "verbs": list(self.verbs),
        }


@dataclass(frozen=True, slots=True)
class RightsDiff:
    """Rights gained and lost: the first :data:`MAX_RIGHTS_LISTED` of each, and whole counts.

    ``groups`` says who gains or loses them all: the largest :data:`MAX_GROUPS_LISTED` groups
    of subjects with the same bindings, and how many rights each of them gains or loses
    (``group_count`` groups in all).
    """

    gained: tuple[RightChange, ...]
    lost: tuple[RightChange, ...]
    gained_count: int
    lost_count: int
    groups: tuple[RightsGroup, ...]
    group_count: int

    @property
    def complete(self) -> bool:
        """Whether every right gained and lost is listed."""
        return self.gained_count == len(self.gained) and self.lost_count == len(self.lost)

    def to_json(self) -> dict[str, Any]:
        return {
            "gained": [r.to_json() for r in self.gained],
            "lost": [r.to_json() for r in self.lost],
            "gained_count": self.gained_count,
            "lost_count": self.lost_count,
            "complete": self.complete,
            "groups": [g.to_json() for g in self.groups],
            "group_count": self.group_count,
        }


def questions(component: Component) -> list[QuestionKey]:
    """Every question about one component: built-in verbs, then its custom actions."""
    asked: list[QuestionKey] = [(v, v if component.action(v) else None) for v in VERBS]
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


def kind_of(verb: str) -> str:
    """A built-in verb is its own kind; every custom action is of kind :data:`CUSTOM`."""
    return verb if verb in BUILTIN_VERBS else CUSTOM


class _Revision:
    """One revision's policies, indexed by who a binding names."""

    def __init__(self, repo: MapRepo) -> None:
        self.policies = PolicySet.from_repo(repo)
        self.bindings = self.policies.bindings
        self.universe = universe(repo)
        self.subjects = set(self.policies.subjects())
        self._by_group: dict[str, list[int]] = {}
        self._by_user: dict[str, list[int]] = {}
        for index, sourced in enumerate(self.bindings):
            b = sourced.binding
            if b.group is not None:
                self._by_group.setdefault(b.group, []).append(index)
            if b.user is not None:
                self._by_user.setdefault(b.user.lower(), []).append(index)
        self._groups_of: dict[str, list[str]] = {}
        for name, members in self.policies.groups.items():
            for member in members:
                self._groups_of.setdefault(member, []).append(name)

    def indexes(self, subject: str) -> tuple[int, ...]:
        """The bindings that can match ``subject``, as ``PolicySet.matching`` selects them."""
        if subject.startswith(GROUP_PREFIX):
            return tuple(self._by_group.get(subject.removeprefix(GROUP_PREFIX), []))
        who = subject.lower()
        found = set(self._by_user.get(who, []))
        for group in self._groups_of.get(who, []):
            found.update(self._by_group.get(group, []))
        return tuple(sorted(found))

    def on(self, indexes: tuple[int, ...], map_name: str) -> tuple[int, ...]:
        return tuple(i for i in indexes if self.bindings[i].covers(map_name))

    def maps(self, indexes: tuple[int, ...]) -> set[str] | None:
        """The maps these bindings cover (None: every map)."""
        covered: set[str] = set()
        for i in indexes:
            scope = self.bindings[i].maps
            if scope is None:
                return None
            covered |= scope
        return covered

    def matched(self, indexes: tuple[int, ...]) -> list[SourcedBinding]:
        return [self.bindings[i] for i in indexes]


@dataclass(slots=True)
class _Delta:
    """What one set of subjects gains and loses on one map, per subject.

    ``explicit_*`` lists the changes on components decided one by one (those the matched
    bindings override, and those whose questions changed); on every other component,
    a question of a kind in ``gained_kinds`` (``lost_kinds``) is gained (lost).
    """

    explicit_gained: list[Change]
    explicit_lost: list[Change]
    gained_kinds: frozenset[str]
    lost_kinds: frozenset[str]
    excluded: frozenset[str]
    gained_each: int = 0
    lost_each: int = 0


class _MapIndex:
    """One map's unchanged components' questions by kind, each list in order."""

    def __init__(self, components: dict[str, frozenset[QuestionKey]], skip: set[str]) -> None:
        self.by_kind: dict[str, list[Change]] = {kind: [] for kind in KINDS}
        self.questions = components
        for cid in sorted(components):
            if cid in skip:
                continue
            for verb, action in sorted(components[cid], key=lambda q: (q[0], q[1] or "")):
                self.by_kind[kind_of(verb)].append((cid, verb, action or ""))

    def count(self, kinds: frozenset[str], excluded: frozenset[str]) -> int:
        total = sum(len(self.by_kind[kind]) for kind in kinds)
        for cid in excluded:
            total -= sum(kind_of(verb) in kinds for verb, _ in self.questions.get(cid, ()))
        return total

    def changes(self, kinds: frozenset[str], excluded: frozenset[str]) -> Iterator[Change]:
        merged = heapq.merge(*(self.by_kind[kind] for kind in sorted(kinds)))
        return (change for change in merged if change[0] not in excluded)


@dataclass
class _Engine:
    before: _Revision
    after: _Revision
    changed: dict[str, set[str]]
    _indexes: dict[str, _MapIndex] = field(default_factory=dict)
    _deltas: dict[tuple[str, tuple[int, ...], tuple[int, ...]], _Delta] = field(
        default_factory=dict
    )

    def index(self, map_name: str) -> _MapIndex:
        found = self._indexes.get(map_name)
        if found is None:
            components = self.after.universe.get(map_name, {})
            found = _MapIndex(components, self.changed.get(map_name, set()))
            self._indexes[map_name] = found
        return found

    def delta(
        self, subject: str, map_name: str, old: tuple[int, ...], new: tuple[int, ...]
    ) -> _Delta:
        """What a subject matched by ``old`` then ``new`` (binding indexes) gains and loses."""
        key = (map_name, old, new)
        found = self._deltas.get(key)
        if found is None:
            found = self._deltas[key] = self._compute(subject, map_name, old, new)
        return found

    def _compute(
        self, subject: str, map_name: str, old: tuple[int, ...], new: tuple[int, ...]
    ) -> _Delta:
        was_matched, now_matched = self.before.matched(old), self.after.matched(new)
        was_components = self.before.universe.get(map_name, {})
        now_components = self.after.universe.get(map_name, {})
        changed = self.changed.get(map_name, set())
        gained_kinds: frozenset[str] = frozenset()
        lost_kinds: frozenset[str] = frozenset()
        excluded: frozenset[str] = frozenset()
        explicit = set(changed)
        if [b.binding for b in was_matched] != [b.binding for b in now_matched]:
            overridden = {
                cid
                for b in (*was_matched, *now_matched)
                for cid in (*b.binding.overrides.components, *b.binding.overrides.actions)
            }
            present = overridden & (was_components.keys() | now_components.keys())
            explicit |= present
            excluded = frozenset(present - changed)
            was_plain = _plain(subject, map_name, was_matched)
            now_plain = _plain(subject, map_name, now_matched)
            gained_kinds = now_plain - was_plain
            lost_kinds = was_plain - now_plain
        gained: list[Change] = []
        lost: list[Change] = []
        for cid in sorted(explicit):
            was = _allowed(subject, map_name, cid, was_components.get(cid, ()), was_matched)
            now = _allowed(subject, map_name, cid, now_components.get(cid, ()), now_matched)
            gained += sorted(now - was)
            lost += sorted(was - now)
        delta = _Delta(gained, lost, gained_kinds, lost_kinds, excluded)
        index = self.index(map_name)
        delta.gained_each = len(gained) + index.count(gained_kinds, excluded)
        delta.lost_each = len(lost) + index.count(lost_kinds, excluded)
        return delta


_PLAIN = "\x00plain"
"""A component id no binding can override (ids are letters, digits and ``._-``)."""


def _plain(subject: str, map_name: str, matched: Sequence[SourcedBinding]) -> frozenset[str]:
    """The kinds allowed on a component that none of ``matched`` overrides."""
    if not matched:
        return frozenset()
    allowed = set()
    for kind in KINDS:
        action = _PLAIN if kind == CUSTOM else None
        verb = _PLAIN if kind == CUSTOM else kind
        if decide_among(matched, Question(subject, verb, map_name, _PLAIN, action)).allowed:
            allowed.add(kind)
    return frozenset(allowed)


def _allowed(
    subject: str,
    map_name: str,
    cid: str,
    asked: Iterable[QuestionKey],
    matched: Sequence[SourcedBinding],
) -> set[Change]:
    if not matched:
        return set()
    return {
        (cid, verb, action or "")
        for verb, action in asked
        if decide_among(matched, Question(subject, verb, map_name, cid, action)).allowed
    }


@dataclass(slots=True)
class _Stream:
    """The rights one set of subjects gains (or loses) on one map."""

    map: str
    subjects: list[str]
    delta: _Delta
    index: _MapIndex
    gained: bool

    @property
    def each(self) -> int:
        return self.delta.gained_each if self.gained else self.delta.lost_each

    def rights(self) -> Iterator[tuple[str, str, str, str, str]]:
        d = self.delta
        explicit = d.explicit_gained if self.gained else d.explicit_lost
        kinds = d.gained_kinds if self.gained else d.lost_kinds
        changes = heapq.merge(explicit, self.index.changes(kinds, d.excluded))
        return (
            (self.map, cid, verb, action, subject)
            for cid, verb, action in changes
            for subject in self.subjects
        )

    def kinds(self) -> set[str]:
        """The kinds of the questions in these rights."""
        d = self.delta
        explicit = d.explicit_gained if self.gained else d.explicit_lost
        kinds = d.gained_kinds if self.gained else d.lost_kinds
        found = {k for k in kinds if self.index.count(frozenset({k}), d.excluded)}
        for _, verb, _ in explicit:
            found.add(kind_of(verb))
            if len(found) == len(KINDS):
                break
        return found


def _group(streams: list[_Stream]) -> RightsGroup:
    """One class's streams in one direction (each on its own map) as one group."""
    kinds: set[str] = set()
    for stream in streams:
        if len(kinds) < len(KINDS):
            kinds |= stream.kinds()
    first = streams[0]
    return RightsGroup(
        change="gained" if first.gained else "lost",
        subjects=tuple(first.subjects[:MAX_SUBJECTS_NAMED]),
        subject_count=len(first.subjects),
        maps=tuple(s.map for s in streams[:MAX_MAPS_NAMED]),
        map_count=len(streams),
        rights_each=sum(s.each for s in streams),
        verbs=tuple(k for k in KINDS if k in kinds),
    )


def diff_rights(base: MapRepo, head: MapRepo) -> RightsDiff:
    """Rights gained and lost from ``base`` to ``head``; equal to :func:`naive_diff`.

    Subjects matched by the same bindings at both revisions decide alike, so they are
    asked once, as one class; and on a component that none of a class's bindings
    overrides, a decision depends only on the kind of the question (a built-in verb, or
    any custom action), so a class is asked seven plain questions plus those about the
    components its bindings override and those whose questions changed. The rights are
    never all built: they are counted, and the first :data:`MAX_RIGHTS_LISTED` of each
    direction are drawn in order from the classes' lazy streams.
    """
    before, after = _Revision(base), _Revision(head)
    engine = _Engine(before, after, _changed_components(before.universe, after.universe))
    all_maps = before.universe.keys() | after.universe.keys()
    classes: dict[tuple[tuple[int, ...], tuple[int, ...]], list[str]] = {}
    for subject in sorted(before.subjects | after.subjects):
        key = (before.indexes(subject), after.indexes(subject))
        if key[0] or key[1]:
            classes.setdefault(key, []).append(subject)
    streams: list[_Stream] = []
    for (old, new), subjects in classes.items():
        old_maps, new_maps = before.maps(old), after.maps(new)
        if old_maps is None or new_maps is None:
            maps: Iterable[str] = sorted(all_maps)
        else:
            maps = sorted((old_maps | new_maps) & all_maps)
        for map_name in maps:
            old_on, new_on = before.on(old, map_name), after.on(new, map_name)
            if not old_on and not new_on:
                continue
            same = [b.binding for b in before.matched(old_on)] == [
                b.binding for b in after.matched(new_on)
            ]
            if same and not engine.changed.get(map_name):
                continue
            delta = engine.delta(subjects[0], map_name, old_on, new_on)
            index = engine.index(map_name)
            for gained in (True, False):
                stream = _Stream(map_name, subjects, delta, index, gained)
                if stream.each:
                    streams.append(stream)
    return _collect(streams, after)


def _collect(streams: list[_Stream], after: _Revision) -> RightsDiff:
    listed: dict[bool, tuple[RightChange, ...]] = {}
    counts: dict[bool, int] = {}
    for gained in (True, False):
        mine = [s for s in streams if s.gained is gained]
        counts[gained] = sum(len(s.subjects) * s.each for s in mine)
        first = itertools.islice(heapq.merge(*(s.rights() for s in mine)), MAX_RIGHTS_LISTED)
        listed[gained] = tuple(RightChange(r, _rule(after, r)) for r in map(_right, first))
    by_class: dict[tuple[bool, str], list[_Stream]] = {}
    for stream in streams:  # a class's streams are made together, map by map in order
        by_class.setdefault((stream.gained, stream.subjects[0]), []).append(stream)
    groups = sorted(
        (_group(mine) for mine in by_class.values()),
        key=lambda g: (-g.rights, g.change, g.subjects),
    )
    return RightsDiff(
        gained=listed[True],
        lost=listed[False],
        gained_count=counts[True],
        lost_count=counts[False],
        groups=tuple(groups[:MAX_GROUPS_LISTED]),
        group_count=len(groups),
    )


def _right(fields: tuple[str, str, str, str, str]) -> Right:
    return Right(*fields)


def _rule(revision: _Revision, right: Right) -> str:
    """Why, at ``revision``: the rule that allows or denies ``right``."""
    matched = revision.matched(revision.on(revision.indexes(right.subject), right.map))
    return decide_among(matched, right.question()).rule


def _changed_components(before: Universe, after: Universe) -> dict[str, set[str]]:
    """Per map, the components whose questions differ (present at one revision only, too)."""
    changed: dict[str, set[str]] = {}
    for name in before.keys() | after.keys():
        old, new = before.get(name, {}), after.get(name, {})
        ids = {cid for cid in old.keys() | new.keys() if old.get(cid) != new.get(cid)}
        if ids:
            changed[name] = ids
    return changed
