"""Judging a request: against the map and policies as the branch stood before its merge.

Pure: given the repo at the merge's first parent (the *base*), the request, who asked
for it (the author of the commit that added the file) and who approved it (the author of
the merge commit, if any), say whether it may run, which rule decided, and what exactly
would run where. A pull request that edits ``policies/`` or an action's command is judged
and run by what was on the branch before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agentless.inventory import Host, HostIndex
from reconciler.findings import Finding
from reconciler.model import Action, Component, Map, Request
from reconciler.model.vocabulary import ALL_COMPONENTS, WHOLE_MAP_VERBS
from reconciler.policy.engine import PolicySet, question_for_action
from reconciler.repo.loader import MapRepo
from reconciler.rules import blocking_errors, check_repo


@dataclass(frozen=True, slots=True)
class Step:
    """One declared action to run on some hosts."""

    component: Component
    action: Action
    hosts: tuple[Host, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "component": self.component.id,
            "action": self.action.name,
            "command": self.action.command,
            "run_as_user": self.action.run_as_user,
            "hosts": [h.name for h in self.hosts],
        }


@dataclass(frozen=True, slots=True)
class Judgement:
    allowed: bool
    rule: str
    map: Map | None = None
    steps: tuple[Step, ...] = ()
    needs_approval: bool = False
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Base:
    """The repo before a merge, with what every judgement against it needs, computed once."""

    repo: MapRepo
    problems: tuple[Finding, ...]
    policies: PolicySet
    hosts: tuple[Host, ...]

    @classmethod
    def of(cls, repo: MapRepo) -> Base:
        return cls(
            repo,
            tuple(blocking_errors(check_repo(repo))),
            PolicySet.from_repo(repo),
            tuple(repo.hosts),
        )


def judge(
    request: Request,
    *,
    base: MapRepo | Base,
    requester: str | None,
    approver: str | None,
    untrusted: str | None = None,
) -> Judgement:
    """May ``request`` run, as the repo stood at ``base``?

    ``untrusted`` says why the identities cannot be trusted (``require_signed_commits``,
    see :mod:`reconciler.git.attribution`): it is the rule that denies.
    Give a :class:`Base` to judge several requests against one repo without re-validating it.
    """
    context = base if isinstance(base, Base) else Base.of(base)
    problems = context.problems
    if problems:
        first = problems[0]
        return Judgement(
            False, f"the map repo before the merge is invalid: {first.location}: {first.message}"
        )
    if untrusted is not None:
        return Judgement(False, untrusted)
    if requester is None:
        return Judgement(
            False, "no requester: the commit that added the request file was not found"
        )
    target = context.repo.map(request.map)
    if target is None:
        return Judgement(False, f"map '{request.map}' does not exist before the merge")
    policies = context.policies
    hosts = HostIndex(context.hosts)
    steps: list[Step] = []
    notes: list[str] = []
    if request.component == ALL_COMPONENTS:
        if request.action not in WHOLE_MAP_VERBS:
            return Judgement(
                False, f"component '*' takes start, stop or restart, not '{request.action}'"
            )
        components = [c for c in target.components if c.action(request.action)]
        skipped = [c.id for c in target.components if not c.action(request.action)]
        if skipped:
            notes.append(f"no '{request.action}' action, skipped: {', '.join(skipped)}")
    else:
        component = target.component(request.component)
        if component is None:
            return Judgement(
                False,
                f"map '{target.name}' has no component '{request.component}' before the merge",
            )
        if component.action(request.action) is None:
            return Judgement(
                False,
                f"component '{component.id}' has no action '{request.action}' before the merge",
            )
        components = [component]
    if not components:
        return Judgement(
            False, f"no component of map '{target.name}' has an action '{request.action}'"
        )
    allowed_by: list[str] = []
    for component in components:
        action = component.action(request.action)
        assert action is not None
        decision = policies.decide(
            question_for_action(requester, target.name, component.id, action.name)
        )
        if not decision.allowed:
            return Judgement(False, f"requester {requester}: {decision.rule}", target)
        allowed_by.append(decision.rule)
        selected = list(hosts.select(component.selector))
        if request.hosts is not None:
            names = {s.name for s in selected}
            unknown = [h for h in request.hosts if h not in names]
            if unknown and request.component != ALL_COMPONENTS:
                return Judgement(
                    False, f"hosts not among '{component.id}''s hosts: {', '.join(unknown)}", target
                )
            wanted = set(request.hosts)
            selected = [h for h in selected if h.name in wanted]
        if not selected:
            return Judgement(False, f"component '{component.id}' has no host to run on", target)
        steps.append(Step(component, action, tuple(selected)))
    needs_approval = any(step.action.confirmation_required for step in steps)
    rule = f"requester {requester}: {allowed_by[0]}"
    if needs_approval:
        confirming = [s for s in steps if s.action.confirmation_required]
        if approver is None:
            return Judgement(
                False,
                "confirmation required: committed directly, no one approved it",
                target,
                needs_approval=True,
            )
        if approver.lower() == requester.lower():
            return Judgement(
                False,
                f"confirmation required: the approver ({approver}) is the requester",
                target,
                needs_approval=True,
            )
        for step in confirming:
            decision = policies.decide(
                question_for_action(approver, target.name, step.component.id, step.action.name)
            )
            if not decision.allowed:
                return Judgement(
                    False,
                    f"confirmation required: approver {approver} may not "
                    f"'{step.action.name}' {step.component.id}: {decision.rule}",
                    target,
                    needs_approval=True,
                )
        rule += f", confirmed by {approver}"
    return Judgement(True, rule, target, tuple(steps), needs_approval, tuple(notes))
