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


class _Denied(Exception):
    """A step of the judgement refuses the request: the rule, and what was known by then."""

    def __init__(self, rule: str, target: Map | None = None, *, needs_approval: bool = False):
        super().__init__(rule)
        self.judgement = Judgement(False, rule, target, needs_approval=needs_approval)


def judge(
    request: Request,
    *,
    base: MapRepo | Base,
    requester: str | None,
    approver: str | None,
    untrusted: str | None = None,
) -> Judgement:
    """May ``request`` run, as the repo stood at ``base``?

    In four steps, each of which may deny: the base and the people are usable
    (:func:`_usable_target`), the request names components that have the action
    (:func:`_targeted`), the requester may run it on each and each has hosts
    (:func:`_authorized`), and an action that needs confirmation was approved by someone
    else who may run it too (:func:`_confirmed`).

    ``untrusted`` says why the identities cannot be trusted (``require_signed_commits``,
    see :mod:`reconciler.git.attribution`): it is the rule that denies.
    Give a :class:`Base` to judge several requests against one repo without re-validating it.
    """
    context = base if isinstance(base, Base) else Base.of(base)
    try:
        target, requester = _usable_target(request, context, requester, untrusted)
        components, notes = _targeted(request, target)
        steps, rule = _authorized(request, target, components, context, requester)
        needs_approval = any(step.action.confirmation_required for step in steps)
        if needs_approval:
            rule += _confirmed(steps, target, context.policies, requester, approver)
    except _Denied as denied:
        return denied.judgement
    return Judgement(True, rule, target, tuple(steps), needs_approval, tuple(notes))


def _usable_target(
    request: Request, context: Base, requester: str | None, untrusted: str | None
) -> tuple[Map, str]:
    """The map the request is for, and its requester, when the base can judge at all."""
    if context.problems:
        first = context.problems[0]
        raise _Denied(
            f"the map repo before the merge is invalid: {first.location}: {first.message}"
        )
    if untrusted is not None:
        raise _Denied(untrusted)
    if requester is None:
        raise _Denied("no requester: the commit that added the request file was not found")
    target = context.repo.map(request.map)
    if target is None:
        raise _Denied(f"map '{request.map}' does not exist before the merge")
    return target, requester


def _targeted(request: Request, target: Map) -> tuple[list[Component], list[str]]:
    """The components the request is for (every one with the action, for ``*``), and
    notes on those skipped."""
    notes: list[str] = []
    if request.component == ALL_COMPONENTS:
        if request.action not in WHOLE_MAP_VERBS:
            raise _Denied(f"component '*' takes start, stop or restart, not '{request.action}'")
        components = [c for c in target.components if c.action(request.action)]
        skipped = [c.id for c in target.components if not c.action(request.action)]
        if skipped:
            notes.append(f"no '{request.action}' action, skipped: {', '.join(skipped)}")
    else:
        component = target.component(request.component)
        if component is None:
            raise _Denied(
                f"map '{target.name}' has no component '{request.component}' before the merge"
            )
        if component.action(request.action) is None:
            raise _Denied(
                f"component '{component.id}' has no action '{request.action}' before the merge"
            )
        components = [component]
    if not components:
        raise _Denied(f"no component of map '{target.name}' has an action '{request.action}'")
    return components, notes


def _authorized(
    request: Request, target: Map, components: list[Component], context: Base, requester: str
) -> tuple[list[Step], str]:
    """A step per component, each allowed to the requester and with hosts to run on; the
    rule that allowed the first."""
    hosts = HostIndex(context.hosts)
    steps: list[Step] = []
    allowed_by: list[str] = []
    for component in components:
        action = component.action(request.action)
        assert action is not None
        decision = context.policies.decide(
            question_for_action(requester, target.name, component.id, action.name)
        )
        if not decision.allowed:
            raise _Denied(f"requester {requester}: {decision.rule}", target)
        allowed_by.append(decision.rule)
        selected = _hosts_for(request, component, list(hosts.select(component.selector)), target)
        steps.append(Step(component, action, tuple(selected)))
    return steps, f"requester {requester}: {allowed_by[0]}"


def _hosts_for(
    request: Request, component: Component, selected: list[Host], target: Map
) -> list[Host]:
    """The component's hosts, narrowed to those the request names (each must be one of
    them, unless the request is for the whole map)."""
    if request.hosts is not None:
        names = {s.name for s in selected}
        unknown = [h for h in request.hosts if h not in names]
        if unknown and request.component != ALL_COMPONENTS:
            raise _Denied(f"hosts not among '{component.id}''s hosts: {', '.join(unknown)}", target)
        wanted = set(request.hosts)
        selected = [h for h in selected if h.name in wanted]
    if not selected:
        raise _Denied(f"component '{component.id}' has no host to run on", target)
    return selected


def _confirmed(
    steps: list[Step], target: Map, policies: PolicySet, requester: str, approver: str | None
) -> str:
    """What the rule says of the approval: someone other than the requester approved, who
    may run every action that needs confirmation."""

    def denied(rule: str) -> _Denied:
        return _Denied(f"confirmation required: {rule}", target, needs_approval=True)

    if approver is None:
        raise denied("committed directly, no one approved it")
    if approver.lower() == requester.lower():
        raise denied(f"the approver ({approver}) is the requester")
    for step in steps:
        if not step.action.confirmation_required:
            continue
        decision = policies.decide(
            question_for_action(approver, target.name, step.component.id, step.action.name)
        )
        if not decision.allowed:
            raise denied(
                f"approver {approver} may not '{step.action.name}' {step.component.id}: "
                f"{decision.rule}"
            )
    return f", confirmed by {approver}"
