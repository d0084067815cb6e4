"""Running a map's declared actions on hosts, through the agentless engine.

Only the map's own ``command`` runs, as the map's reviewed shell text. The one value OpsMap
adds to it, the ``run_as_user`` of ``sudo``, is quoted in :func:`action_command` and
nowhere else; a request's fields (reason, hosts…) never reach a shell: a request only
*names* an action.

:class:`ActionRunner` runs one action on many hosts at once, one action at a time per host
(a lock per host name, held across the command and its completion check), and, for an
``async`` action, polls its ``completion_check`` until it passes or its time runs out.
While a start, restart or stop runs, the component's phase is STARTING or STOPPING.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import shlex
from collections.abc import Callable, Mapping, Sequence

from agentless.errors import AgentlessError, ConnectionLost, HostUnreachable
from agentless.inventory import Host
from agentless.result import CheckOutcome, CheckState
from agentless.runner import CheckRun, CheckTarget, run_check
from agentless.transport import Transport
from reconciler.actions.outcome import (
    DEFAULT_OUTPUT_LIMIT,
    ActionOutcome,
    CompletionOutcome,
    HostOutcome,
    Step,
    StepStatus,
)
from reconciler.clock import Clock
from reconciler.model.common import ComponentId
from reconciler.model.depgraph import capped
from reconciler.model.maps import Action, CompletionCheck, Component, Map
from reconciler.model.masking import Masker
from reconciler.model.status import ComponentStatus
from reconciler.model.vocabulary import WHOLE_MAP_VERBS

HostsByComponent = Mapping[ComponentId, Sequence[Host]] | Mapping[str, Sequence[Host]]
"""The hosts each component's action runs on, by component id."""
SetPhase = Callable[[str, str, ComponentStatus | None], None]
"""``set_phase(map, component, STARTING | STOPPING | None)``; None clears the phase."""

#: The verbs a whole-map run (``component: "*"``) accepts.
#: The phase a component shows while an action of this name runs.
PHASES: Mapping[str, ComponentStatus] = {
    "start": ComponentStatus.STARTING,
    "restart": ComponentStatus.STARTING,
    "stop": ComponentStatus.STOPPING,
}
#: Longest a single probe of a completion check may take (the check's own
#: ``timeout_secs`` bounds the whole polling).
PROBE_TIMEOUT_CAP_S = 10.0
#: Slack of the client-side backstop beyond the transport's own timeouts.
BACKSTOP_GRACE_S = 5.0


def action_command(action: Action) -> str:
    """The shell text OpsMap sends for ``action``: its command, under sudo if it says so.

    With ``run_as_user``: ``sudo -n -u USER -- /bin/sh -c COMMAND``, the user and the
    command quoted here with :func:`shlex.quote`, the only place OpsMap interpolates a
    value into an action. ``-n``: sudo fails at once rather than asking for a password.
    """
    if action.run_as_user is None:
        return action.command
    user = shlex.quote(action.run_as_user)
    return f"sudo -n -u {user} -- /bin/sh -c {shlex.quote(action.command)}"


def phase_of(action_name: str) -> ComponentStatus | None:
    """STARTING for start and restart, STOPPING for stop, None for any other action."""
    return PHASES.get(action_name)


def dependency_order(map_: Map) -> list[str]:
    """The map's component ids, every component after the components it depends on.

    Ties keep the map's order. Dependencies on ids the map does not declare (external
    components) are ignored. Raises :class:`ValueError` on a dependency cycle (which
    ``opsmap validate`` reports as an error).
    """
    index: dict[str, int] = {c.id: i for i, c in enumerate(map_.components)}
    waiting_on: dict[str, set[str]] = {
        c.id: {d for d in c.dependencies if d in index and d != c.id} for c in map_.components
    }
    dependents: dict[str, list[str]] = {cid: [] for cid in index}
    for cid, deps in waiting_on.items():
        for dep in deps:
            dependents[dep].append(cid)
    ready = [(index[cid], cid) for cid, deps in waiting_on.items() if not deps]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, cid = heapq.heappop(ready)
        order.append(cid)
        for dependent in dependents[cid]:
            waiting_on[dependent].discard(cid)
            if not waiting_on[dependent]:
                heapq.heappush(ready, (index[dependent], dependent))
    if len(order) != len(index):
        placed = set(order)
        stuck = [cid for cid in index if cid not in placed]
        raise ValueError(f"map '{map_.name}': dependency cycle among {capped(stuck)}")
    return order


def whole_map_plan(map_: Map, verb: str) -> list[tuple[str, str]]:
    """The (component, action) pairs a whole-map ``verb`` takes, in order.

    start: dependencies first; stop: dependents first; restart: stop in that reverse
    order, then start in dependency order.
    """
    if verb not in WHOLE_MAP_VERBS:
        raise ValueError(f"a whole-map run is {', '.join(WHOLE_MAP_VERBS)}, not {verb!r}")
    order = dependency_order(map_)
    stops = [(cid, "stop") for cid in reversed(order)]
    starts = [(cid, "start") for cid in order]
    return {"start": starts, "stop": stops, "restart": stops + starts}[verb]


class ActionRunner:
    """Runs actions on hosts; one instance per process, so the per-host locks are shared.

    ``set_phase`` is told when a component starts and stops showing STARTING or
    STOPPING. ``clock`` paces completion checks (a :class:`~reconciler.clock.VirtualClock`
    in tests). ``output_limit`` is the size in bytes of the output excerpt kept per host.
    ``masker`` gives the ``mask:`` patterns in force (the applied revision's): they hide
    their matches in every output excerpt and completion check message it keeps.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        clock: Clock,
        set_phase: SetPhase | None = None,
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
        masker: Callable[[], Masker] = Masker,
    ) -> None:
        self._transport = transport
        self._masker = masker
        self._clock = clock
        self._set_phase = set_phase
        self._output_limit = output_limit
        self._locks: dict[str, asyncio.Lock] = {}

    def host_lock(self, host_name: str) -> asyncio.Lock:
        """The lock that keeps two actions from overlapping on ``host_name``."""
        lock = self._locks.get(host_name)
        if lock is None:
            lock = self._locks[host_name] = asyncio.Lock()
        return lock

    async def run_action(
        self,
        map_name: str,
        component: Component | str,
        action: Action,
        hosts: Sequence[Host],
    ) -> ActionOutcome:
        """Run ``action`` of ``component`` on every host of ``hosts`` at once.

        Each host: take its lock, run the command (``action.timeout_secs``), then, if the
        action is ``async`` with a ``completion_check`` and the command exited 0, poll the
        check until it passes (:meth:`wait_completed`). The outcome succeeds when every
        host did; with no hosts at all, it fails. A host whose connection dropped once the
        command was sent is ``unknown``, never ``failed`` (:mod:`reconciler.actions.outcome`).
        Nothing raises for a host's failure.
        """
        component_id = component if isinstance(component, str) else component.id
        started = self._clock.now()
        unique = list({host.name: host for host in hosts}.values())
        if not unique:
            return ActionOutcome(map_name, component_id, action.name, error="no hosts to run on")
        key = f"{map_name}/{component_id}/{action.name}"
        outcomes: list[HostOutcome | None] = [None] * len(unique)

        async def one(index: int, host: Host) -> None:
            outcomes[index] = await self._on_host(host, action, key)

        phase = phase_of(action.name)
        if phase is not None:
            self._phase(map_name, component_id, phase)
        try:
            async with asyncio.TaskGroup() as tg:
                for index, host in enumerate(unique):
                    tg.create_task(one(index, host))
        finally:
            if phase is not None:
                self._phase(map_name, component_id, None)
        done = tuple(o for o in outcomes if o is not None)
        if len(done) != len(unique):
            raise AssertionError("a host finished without an outcome")
        duration = self._clock.now() - started
        return ActionOutcome(map_name, component_id, action.name, hosts=done, duration_s=duration)

    async def run_whole_map(
        self,
        map_: Map,
        verb: str,
        hosts_by_component: HostsByComponent,
    ) -> ActionOutcome:
        """Run ``verb`` (start, stop or restart) over every component of ``map_``.

        - start: dependencies first (dependency order), each component's action finished,
          completion check included, before the next begins;
        - stop: dependents first (the reverse order);
        - restart: stop in the reverse order, then start in dependency order (the
          components' own ``restart`` actions are not used).

        A component without the action, or without hosts in ``hosts_by_component``, is
        skipped (recorded as SKIPPED). The run stops at the first step that failed or whose
        outcome is unknown: the steps left are recorded as NOT_RUN. Raises
        :class:`ValueError` for another verb or a cycle.
        """
        plan = whole_map_plan(map_, verb)
        started = self._clock.now()
        steps: list[Step] = []
        failed = False
        for component_id, name in plan:
            component = map_.component(component_id)
            action = component.action(name) if component is not None else None
            hosts = hosts_by_component.get(ComponentId(component_id), ())
            if action is None:
                steps.append(Step(component_id, name, StepStatus.SKIPPED, f"no '{name}' action"))
            elif failed:
                reason = "not run: an earlier step failed or its outcome is unknown"
                steps.append(Step(component_id, name, StepStatus.NOT_RUN, reason))
            elif not hosts:
                steps.append(Step(component_id, name, StepStatus.SKIPPED, "no hosts to run on"))
            else:
                outcome = await self.run_action(map_.name, component_id, action, hosts)
                status = StepStatus(outcome.result)
                steps.append(Step(component_id, name, status, outcome.reason, outcome))
                failed = not outcome.succeeded
        error = None
        if not any(s.status in (StepStatus.SUCCEEDED, StepStatus.FAILED) for s in steps):
            error = f"no component of map '{map_.name}' has a '{verb}' action and hosts"
        return ActionOutcome(
            map_.name,
            "*",
            verb,
            steps=tuple(steps),
            error=error,
            duration_s=self._clock.now() - started,
        )

    async def wait_completed(
        self, host: Host, check: CompletionCheck, *, key: str = "completion"
    ) -> CompletionOutcome:
        """Poll ``check`` on ``host`` every ``interval_secs`` until it is OK or
        ``timeout_secs`` (on the runner's clock) have passed; the first probe runs at once.
        ``reachable`` says whether the host answered the last probe.
        """
        probe_timeout = min(check.timeout_secs, PROBE_TIMEOUT_CAP_S)
        target = CheckTarget(key, host, check.type, check.config, probe_timeout)
        started = self._clock.now()
        deadline = started + check.timeout_secs
        attempts = 0
        while True:
            attempts += 1
            outcome, reachable = await self._probe(target)
            waited = self._clock.now() - started
            if outcome.state is CheckState.OK:
                state = outcome.state.name
                return CompletionOutcome(True, state, outcome.message, attempts, waited)
            remaining = deadline - self._clock.now()
            if remaining <= 0:
                message = f"not OK after {check.timeout_secs:g}s: {outcome.message}"
                return CompletionOutcome(
                    False, outcome.state.name, message, attempts, waited, reachable
                )
            await self._clock.sleep(min(check.interval_secs, remaining))

    # -- internals ----------------------------------------------------------------------

    def _phase(self, map_name: str, component_id: str, phase: ComponentStatus | None) -> None:
        if self._set_phase is not None:
            self._set_phase(map_name, component_id, phase)

    async def _on_host(self, host: Host, action: Action, key: str) -> HostOutcome:
        async with self.host_lock(host.name):
            outcome = await self._command(host, action)
            if outcome.command_ok and action.is_async and action.completion_check is not None:
                completion = await self.wait_completed(
                    host, action.completion_check, key=f"{key}@{host.name}"
                )
                outcome = dataclasses.replace(outcome, completion=completion)
            return outcome

    async def _command(self, host: Host, action: Action) -> HostOutcome:
        command = action_command(action)
        backstop = _backstop(host, action.timeout_secs)
        started = self._clock.now()
        try:
            async with asyncio.timeout(backstop):
                result = await self._transport.run(host, command, timeout=action.timeout_secs)
        except HostUnreachable as exc:  # never sent: the command did not run
            return self._no_result(host, started, unreachable=exc.reason)
        except ConnectionLost as exc:  # sent: it may have run
            if not exc.started:
                return self._no_result(host, started, unreachable=f"connection lost: {exc.reason}")
            return self._no_result(host, started, lost=exc.reason)
        except TimeoutError:
            return self._no_result(
                host, started, timed_out=True, error=f"no answer within {backstop:g}s"
            )
        except AgentlessError as exc:
            if not exc.started:
                return self._no_result(host, started, unreachable=str(exc))
            return self._no_result(host, started, error=str(exc))
        # masking up to 16 KiB with 16 patterns may take a while: never on the loop
        return await asyncio.to_thread(
            HostOutcome.from_result,
            result,
            output_limit=self._output_limit,
            mask=self._masker().apply,
        )

    def _no_result(
        self,
        host: Host,
        started: float,
        *,
        unreachable: str | None = None,
        error: str | None = None,
        lost: str | None = None,
        timed_out: bool = False,
    ) -> HostOutcome:
        return HostOutcome(
            host=str(host.name),
            exit_status=None,
            timed_out=timed_out,
            duration_s=self._clock.now() - started,
            stdout_sha256=None,
            stderr_sha256=None,
            output_excerpt="",
            unreachable=unreachable,
            error=error,
            lost=lost,
        )

    async def _probe(self, target: CheckTarget) -> tuple[CheckOutcome, bool]:
        """The probe's outcome and whether the host answered it."""
        backstop = _backstop(target.host, target.timeout_s)
        try:
            async with asyncio.timeout(backstop):
                run: CheckRun = await run_check(target, transport=self._transport)
        except TimeoutError:
            return CheckOutcome(CheckState.UNKNOWN, f"no answer within {backstop:g}s"), False
        message = self._masker().apply(run.outcome.message)
        return dataclasses.replace(run.outcome, message=message), not run.host_unreachable


def _backstop(host: Host, timeout: float) -> float:
    """Client-side limit for one command: its own timeout plus connecting and slack."""
    return timeout + host.connect_timeout_s + host.login_timeout_s + BACKSTOP_GRACE_S
