"""What a person may see: the components of the applied revision they may ``view``.

One :class:`Visibility` per applied revision; each person's :class:`Sight` is computed once
(maps × components decisions of :mod:`~reconciler.policy.engine`) and kept for the
:data:`REMEMBERED` people asked about last, so that filtering a stream of events costs a
set lookup per event.

A :class:`Sight` is the one rule every document and stream of the HTTP endpoint applies
(``/api/v1/status``, the page's documents, the event stream):

- a component is seen when ``view`` on it is allowed;
- a map is seen when one of its components is (a map with no components: when ``view`` on
  the map as a whole, ``*``, is allowed);
- a request or action is seen when its target is: its component, or for a whole-map
  request (``component: "*"``) *every* component of the map, since its hosts and its
  outcome are those of all of them; a request whose target is not known is not seen;
- what names no map (a revision) is seen by every person, and by nobody else.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.model.vocabulary import ALL_COMPONENTS
from reconciler.policy.engine import (
    GROUP_PREFIX,
    PolicySet,
    Question,
    SourcedBinding,
    decide_among,
)
from reconciler.repo.loader import MapRepo

REMEMBERED = 1024
"""People whose sights are kept at once (the oldest asked is forgotten)."""


@dataclass(frozen=True, slots=True)
class Sight:
    """What one viewer may see at one revision (see the module docstring for the rule)."""

    everything: bool
    """Identities are not enforced: everything is seen."""
    person: bool
    """A person (a trusted identity), who sees what names no map; False: nobody."""
    components: frozenset[tuple[str, str]] = frozenset()
    """``(map, component)`` pairs the viewer may ``view``."""
    maps: frozenset[str] = frozenset()
    """Maps with a component seen (or, with none, viewed as a whole)."""
    whole: frozenset[str] = frozenset()
    """Maps every component of which is seen."""

    def component(self, map_name: str, component: str) -> bool:
        return self.everything or (map_name, component) in self.components

    def map(self, map_name: str) -> bool:
        return self.everything or map_name in self.maps

    def target(self, map_name: str | None, component: str | None) -> bool:
        """A request's or an action's target: a component, or (``*`` or None) a whole map;
        None for the map: not known."""
        if self.everything:
            return True
        if map_name is None:
            return False
        if component is None or component == ALL_COMPONENTS:
            return map_name in self.whole
        return (map_name, component) in self.components


EVERYTHING = Sight(everything=True, person=False)
NOTHING = Sight(everything=False, person=False)
"""A request with no trusted identity while identities are enforced."""
NO_RIGHTS = Sight(everything=False, person=True)
"""A person who may view no component (they still see the revisions)."""


class Visibility:
    """Who may view which components at one revision (none when there is no revision)."""

    def __init__(self, repo: MapRepo | None) -> None:
        self._policies = PolicySet.from_repo(repo) if repo is not None else None
        self._maps: dict[str, tuple[str, ...]] = (
            {m.model.name: tuple(c.id for c in m.model.components) for m in repo.maps}
            if repo is not None
            else {}
        )
        self._seen: OrderedDict[str, Sight] = OrderedDict()

    @property
    def policies(self) -> PolicySet | None:
        """The revision's policies (None without a revision), computed once for it."""
        return self._policies

    def sight(self, person: str | None) -> Sight:
        """What ``person`` may see (None: no trusted identity, :data:`NOTHING`); a name that
        reads as a group (``group:…``) is nobody: a person with no rights."""
        if person is None:
            return NOTHING
        key = person.strip().lower()
        found = self._seen.get(key)
        if found is not None:
            self._seen.move_to_end(key)
            return found
        if not key or key.startswith(GROUP_PREFIX) or self._policies is None:
            found = NO_RIGHTS  # a group is nobody; without a revision, no map to see yet
        else:
            found = self._decide(self._policies, key)
        self._seen[key] = found
        if len(self._seen) > REMEMBERED:
            self._seen.popitem(last=False)
        return found

    def _decide(self, policies: PolicySet, person: str) -> Sight:
        """One decision per component, the person's bindings matched once per map."""
        components: set[tuple[str, str]] = set()
        maps: set[str] = set()
        whole: set[str] = set()
        for map_name, ids in self._maps.items():
            bindings = policies.matching(person, map_name)
            seen = [c for c in ids if _views(bindings, person, map_name, c)]
            components.update((map_name, c) for c in seen)
            if seen or (not ids and _views(bindings, person, map_name, ALL_COMPONENTS)):
                maps.add(map_name)
                if len(seen) == len(ids):
                    whole.add(map_name)
        return Sight(False, True, frozenset(components), frozenset(maps), frozenset(whole))


def _views(bindings: Sequence[SourcedBinding], person: str, map_name: str, component: str) -> bool:
    return decide_among(bindings, Question(person, "view", map_name, component)).allowed
