"""Who sees what on the page: the policy engine's ``view`` verb, per component.

Without trusted identities (no ``--trusted-user-header``), everything is shown to everyone.
With them, what a person sees is their :class:`~reconciler.policy.visibility.Sight` (the
one rule of every document and stream: see :mod:`reconciler.policy.visibility`), a
request that brings no trusted identity is refused before it reaches a document, and the
actions say whether the viewer may request each, with the rule that decided.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.policy.engine import Decision, SourcedBinding, decide_among, question_for_action
from reconciler.policy.visibility import EVERYTHING, Sight, Visibility


@dataclass
class Access:
    """The decisions for one viewer in one request (bindings matched once per map)."""

    user: str | None
    visibility: Visibility
    filtered: bool = False
    """Identities are enforced: show only what ``user`` may view (nothing when None)."""
    sight: Sight = field(init=False)
    _matched: dict[str, list[SourcedBinding]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sight = self.visibility.sight(self.user) if self.filtered else EVERYTHING

    def _bindings(self, map_name: str) -> list[SourcedBinding]:
        assert self.user is not None
        policies = self.visibility.policies
        assert policies is not None
        if map_name not in self._matched:
            self._matched[map_name] = policies.matching(self.user, map_name)
        return self._matched[map_name]

    def may_view(self, map_name: str, component: str) -> bool:
        return self.sight.component(map_name, component)

    def may_view_map(self, map_name: str) -> bool:
        return self.sight.map(map_name)

    def may_view_target(self, map_name: str | None, component: str | None) -> bool:
        """A request's target (``*``: the whole map; None: not known)."""
        return self.sight.target(map_name, component)

    def may_run(self, map_name: str, component: str, action: str) -> Decision | None:
        """The decision on requesting ``action``; None when the viewer is not known."""
        if not self.filtered:
            return None
        if self.user is None:
            return Decision(False, "no trusted identity came with this request")
        if self.visibility.policies is None:
            return Decision(False, "no revision applied yet")
        question = question_for_action(self.user, map_name, component, action)
        return decide_among(self._bindings(map_name), question)
