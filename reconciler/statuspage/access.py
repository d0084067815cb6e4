"""Who sees what on the page: the policy engine's ``view`` verb, per component.

Without trusted identities (no ``--trusted-user-header``), everything is shown to everyone.
With them, a request that brings no trusted identity sees nothing, and for a person a
component is shown when the policies let its viewer ``view`` it, a map when at least
one of its components is shown (an empty map: when ``view`` is granted on it at all), and
the actions say whether the viewer may request each, with the rule that decided.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.policy.engine import (
    Decision,
    PolicySet,
    Question,
    SourcedBinding,
    decide_among,
    question_for_action,
)

VIEW = "view"


@dataclass
class Access:
    """The decisions for one viewer in one request (bindings matched once per map)."""

    user: str | None
    policies: PolicySet | None
    filtered: bool = False
    """Identities are enforced: show only what ``user`` may view (nothing when None)."""
    _matched: dict[str, list[SourcedBinding]] = field(default_factory=dict)

    def _bindings(self, map_name: str) -> list[SourcedBinding]:
        assert self.user is not None
        assert self.policies is not None
        if map_name not in self._matched:
            self._matched[map_name] = self.policies.matching(self.user, map_name)
        return self._matched[map_name]

    def may_view(self, map_name: str, component: str) -> bool:
        if not self.filtered:
            return True
        if self.user is None or self.policies is None:
            return False
        question = Question(self.user, VIEW, map_name, component)
        return decide_among(self._bindings(map_name), question).allowed

    def may_view_map(self, map_name: str, components: list[str]) -> bool:
        if not self.filtered:
            return True
        if not components:
            return self.may_view(map_name, "*")
        return any(self.may_view(map_name, c) for c in components)

    def may_run(self, map_name: str, component: str, action: str) -> Decision | None:
        """The decision on requesting ``action``; None when the viewer is not known."""
        if not self.filtered:
            return None
        if self.user is None:
            return Decision(False, "no trusted identity came with this request")
        if self.policies is None:
            return Decision(False, "no revision applied yet")
        question = question_for_action(self.user, map_name, component, action)
        return decide_among(self._bindings(map_name), question)
