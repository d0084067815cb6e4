"""What the event stream tells, taken where it happens (see :mod:`.broker` for the stream).

- :class:`EventFeed` is the loop's :class:`~reconciler.loop.events.LoopEvents`: it passes
  every event on to the service's own sink (audit, requests) and publishes ``check``,
  ``component`` and ``revision`` events; it also keeps what readiness and the viewers'
  filters need: the applied revision's :class:`~reconciler.policy.visibility.Visibility`,
  and whether the loop has caught up with the branch since it started.
- :class:`AuditedPhases` is the request processor's auditor: each record is stored as
  before, and a request's or an action's phase becomes a ``request`` or ``action`` event
  (the records are what the processor decides and does, step by step).
- :meth:`EventFeed.phase_changed`: a component ``starting`` or ``stopping`` while an action
  runs, and its status again after.

All on the event loop; publishing never waits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler.findings import Finding
from reconciler.loop.events import LoopEvents
from reconciler.loop.view import CheckView
from reconciler.model.status import ComponentStatus
from reconciler.policy.visibility import Visibility
from reconciler.repo.loader import MapRepo
from reconciler.requests.processor import Auditor
from reconciler.server.broker import EventBroker

CHECK_FIELDS = (
    "state",
    "hard_state",
    "state_type",
    "attempt",
    "message",
    "value",
    "duration_s",
    "last_run",
    "flapping",
)


class EventFeed:
    """The loop's events sink: the service's sink first, then the event stream."""

    def __init__(
        self,
        inner: LoopEvents,
        broker: EventBroker,
        *,
        status_of: Callable[[str, str], str | None] = lambda m, c: None,
    ) -> None:
        self._inner = inner
        self.broker = broker
        self.status_of = status_of
        self.visibility = Visibility(None)
        self.applied: str | None = None
        self.caught_up = False
        """Whether a fetch has seen the branch since the start, with a revision applied."""

    def revision_applied(self, sha: str, repo: MapRepo, *, resumed: bool) -> None:
        self._inner.revision_applied(sha, repo, resumed=resumed)
        self.applied = sha
        self.visibility = Visibility(repo)
        self.broker.publish(
            "revision", {"kind": "applied", "sha": sha, "error_count": 0, "resumed": resumed}
        )

    def revision_rejected(self, sha: str, problems: list[Finding]) -> None:
        self._inner.revision_rejected(sha, problems)
        self.broker.publish(
            "revision", {"kind": "rejected", "sha": sha, "error_count": len(problems)}
        )

    def head_seen(self, sha: str) -> None:
        self._inner.head_seen(sha)
        self.caught_up = True

    def component_changed(self, map_name: str, component: str, old: str | None, new: str) -> None:
        self._inner.component_changed(map_name, component, old, new)
        self.broker.publish(
            "component", {"map": map_name, "component": component, "status": new, "old": old}
        )

    def check_changed(self, map_name: str, component: str, check: CheckView) -> None:
        self._inner.check_changed(map_name, component, check)
        data: dict[str, Any] = {
            "map": map_name,
            "component": component,
            "check": check.name,
            "host": check.host,
        }
        data.update((f, getattr(check, f)) for f in CHECK_FIELDS)
        self.broker.publish("check", data)

    def phase_changed(self, map_name: str, component: str, phase: ComponentStatus | None) -> None:
        """An action starts or stops a component (``phase``), or is over (None: the status
        its checks give it again)."""
        checks = self.status_of(map_name, component)
        if phase is None:
            status, old = checks or ComponentStatus.UNKNOWN.value, None
        else:
            status, old = phase.value, checks
        self.broker.publish(
            "component", {"map": map_name, "component": component, "status": status, "old": old}
        )


class AuditedPhases:
    """The processor's auditor: records go to ``inner``; phases become events."""

    def __init__(self, inner: Auditor, broker: EventBroker) -> None:
        self._inner = inner
        self.broker = broker

    def flush(self) -> int:
        return self._inner.flush()

    def append(
        self,
        *,
        action: str,
        actor: str,
        target: dict[str, Any],
        details: dict[str, Any],
        commit: str,
        revision: str | None,
    ) -> object:
        record = self._inner.append(
            action=action,
            actor=actor,
            target=target,
            details=details,
            commit=commit,
            revision=revision,
        )
        self._publish(action, target, details, commit)
        return record

    def _publish(
        self, action: str, target: dict[str, Any], details: dict[str, Any], commit: str
    ) -> None:
        about = {
            "request": target.get("request"),
            "map": target.get("map"),
            "component": target.get("component"),
            "action": target.get("action"),
        }
        kind, _, phase = action.partition(".")
        if kind == "request":  # authorized or denied, with the rule
            self.broker.publish(
                "request",
                {
                    **about,
                    "sha": commit,
                    "phase": phase,
                    "decision": details.get("decision"),
                    "rule": details.get("rule"),
                },
            )
            return
        if kind != "action":
            return
        if phase == "started":
            started = {**about, "host": None, "phase": "started", "outcome": None}
            self.broker.publish("action", started)
            return
        results = details.get("results")
        if isinstance(results, dict) and results:
            for host, result in sorted(results.items()):
                self.broker.publish(
                    "action", {**about, "host": str(host), "phase": "finished", "outcome": result}
                )
        else:
            self.broker.publish(
                "action", {**about, "host": None, "phase": "finished", "outcome": phase}
            )
        self.broker.publish(
            "request", {**about, "sha": commit, "phase": phase, "decision": None, "rule": None}
        )
