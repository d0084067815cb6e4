"""Requests a pull request adds: who asks, and what the reconciler will decide and run.

The requester is the author of the commit that added the file, as that commit says: a
claim, shown as unverified (signatures, when required, are checked only at the merge).
Each is judged by :func:`reconciler.policy.judge.judge` against base, as the reconciler judges a
merged request against the merge's first parent. The approver is whoever merges, unknown
before the merge: a request that needs one is judged with each person the policies allow
to confirm it in mind, and the plan names them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconciler.actions import action_command
from reconciler.model import Request
from reconciler.model.vocabulary import ALL_COMPONENTS
from reconciler.policy.engine import GROUP_PREFIX, question_for_action
from reconciler.policy.judge import Base, judge
from reconciler.repo.loader import Loaded, MapRepo

UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class PlannedStep:
    component: str
    action: str
    hosts: tuple[str, ...]
    command: str

    def to_json(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "action": self.action,
            "hosts": list(self.hosts),
            "command": self.command,
        }


@dataclass(frozen=True, slots=True)
class RequestPlan:
    path: str
    request: Request
    requester: str
    authorized: bool
    """Whether it will run when merged (by one of ``approvers`` if it needs approval)."""
    rule: str
    needs_approval: bool
    approvers: tuple[str, ...]
    steps: tuple[PlannedStep, ...]
    notes: tuple[str, ...]

    @property
    def verdict(self) -> str:
        if not self.authorized:
            return "denied"
        return "authorized once approved" if self.needs_approval else "authorized"

    def to_json(self) -> dict[str, Any]:
        r = self.request
        return {
            "path": self.path,
            "map": r.map,
            "component": r.component,
            "action": r.action,
            "reason": r.reason,
            "hosts_requested": r.hosts,
            "requester": self.requester,
            "requester_verified": False,
            "verdict": self.verdict,
            "authorized": self.authorized,
            "rule": self.rule,
            "needs_approval": self.needs_approval,
            "approvers": list(self.approvers),
            "steps": [s.to_json() for s in self.steps],
            "notes": list(self.notes),
        }


def plan_requests(
    base: MapRepo, head: MapRepo, *, requester_of: Callable[[str], str | None]
) -> tuple[list[RequestPlan], list[str]]:
    """The request files head adds (judged), and those it changes (which never run)."""
    before = {loaded.doc.path: loaded for loaded in base.requests}
    judged_at = Base.of(base)
    added, modified = [], []
    for loaded in head.requests:
        previous = before.get(loaded.doc.path)
        if previous is None:
            added.append(plan_request(loaded, judged_at, requester_of(loaded.doc.path)))
        elif previous.model != loaded.model:
            modified.append(loaded.doc.path)
    return added, modified


def plan_request(loaded: Loaded[Request], base: Base, requester: str | None) -> RequestPlan:
    request = loaded.model
    notes: list[str] = []
    if base.repo.effective_settings.require_signed_commits:
        notes.append("require_signed_commits: signatures are verified when it is merged")
    first = judge(request, base=base, requester=requester, approver=None)
    approvers: tuple[str, ...] = ()
    verdict = first
    rule = first.rule
    if first.needs_approval and requester is not None:
        approvers = _approvers(request, base, requester)
        if approvers:
            verdict = judge(request, base=base, requester=requester, approver=approvers[0])
            rule = verdict.rule.removesuffix(f", confirmed by {approvers[0]}")
        else:
            rule = (
                f"confirmation required: no one but the requester may "
                f"'{request.action}' here, so no merge can approve it"
            )
    steps = tuple(
        PlannedStep(
            s.component.id, s.action.name, tuple(h.name for h in s.hosts), action_command(s.action)
        )
        for s in verdict.steps
    )
    return RequestPlan(
        path=loaded.doc.path,
        request=request,
        requester=requester or UNKNOWN,
        authorized=verdict.allowed,
        rule=rule,
        needs_approval=first.needs_approval,
        approvers=approvers,
        steps=steps if verdict.allowed else (),
        notes=(*notes, *verdict.notes),
    )


def _approvers(request: Request, base: Base, requester: str) -> tuple[str, ...]:
    """The people, other than the requester, allowed every action that needs confirming."""
    target = base.repo.map(request.map)
    if target is None:
        return ()
    if request.component == ALL_COMPONENTS:
        components = [c for c in target.components if c.action(request.action)]
    else:
        one = target.component(request.component)
        components = [one] if one is not None else []
    confirming = [
        (c.id, action.name)
        for c in components
        if (action := c.action(request.action)) is not None and action.confirmation_required
    ]
    policies = base.policies
    people = [
        s
        for s in policies.subjects()
        if not s.startswith(GROUP_PREFIX) and s.lower() != requester.lower()
    ]
    return tuple(
        person
        for person in people
        if all(
            policies.decide(question_for_action(person, target.name, cid, action)).allowed
            for cid, action in confirming
        )
    )
