"""What a person may see: the components of the applied revision they may ``view``.

One :class:`Visibility` per applied revision; each person's visible set is computed once
(maps × components decisions of :mod:`~reconciler.policy.engine`) and kept for the
:data:`REMEMBERED` people asked about last, so that filtering a stream of events costs a
set lookup per event.
"""

from __future__ import annotations

from collections import OrderedDict

from reconciler.policy.engine import GROUP_PREFIX, PolicySet, Question
from reconciler.repo.loader import MapRepo

REMEMBERED = 1024
"""People whose visible components are kept at once (the oldest asked is forgotten)."""


class Visibility:
    """Who may view which components at one revision (none when there is no revision)."""

    def __init__(self, repo: MapRepo | None) -> None:
        self._policies = PolicySet.from_repo(repo) if repo is not None else None
        self._components = (
            [(m.model.name, c.id) for m in repo.maps for c in m.model.components]
            if repo is not None
            else []
        )
        self._seen: OrderedDict[str, frozenset[tuple[str, str]]] = OrderedDict()

    @property
    def policies(self) -> PolicySet | None:
        """The revision's policies (None without a revision), computed once for it."""
        return self._policies

    def visible(self, person: str) -> frozenset[tuple[str, str]]:
        """``(map, component)`` pairs ``person`` may view; a name that reads as a group
        (``group:…``) is nobody."""
        key = person.strip().lower()
        found = self._seen.get(key)
        if found is not None:
            self._seen.move_to_end(key)
            return found
        policies = self._policies
        if policies is None or not key or key.startswith(GROUP_PREFIX):
            found = frozenset()
        else:
            found = frozenset(
                (m, c)
                for m, c in self._components
                if policies.decide(Question(key, "view", m, c)).allowed
            )
        self._seen[key] = found
        if len(self._seen) > REMEMBERED:
            self._seen.popitem(last=False)
        return found

    def may_view(self, person: str, map_name: str, component: str | None = None) -> bool:
        """Whether ``person`` may view the component, or (``component`` None) any of the map's."""
        seen = self.visible(person)
        if component is not None:
            return (map_name, component) in seen
        return any(m == map_name for m, _ in seen)
