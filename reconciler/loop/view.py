"""The reconciler's state as one typed snapshot: ``/api/v1/status``, the metrics, the status page.

:class:`Snapshot` (frozen dataclasses down to each check) is built on the event loop's
thread (the only one that touches live state); worker threads encode a finished snapshot
(the metrics, and for ``/api/v1/status`` its JSON: :meth:`Snapshot.to_json`,
:func:`encode_json`) and never iterate live dictionaries. Its size is linear in the repo:
each component names at most a few of the failing components below it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, cast

from reconciler.findings import Finding
from reconciler.loop.checkstate import CheckStatus
from reconciler.loop.placement import Placement
from reconciler.loop.scheduler import CheckKey, ScheduledCheck
from reconciler.model import Map
from reconciler.model.status import ComponentStatus, component_status, impacts
from reconciler.repo.loader import MapRepo

SHOWN_ERRORS = 100
"""Errors of a rejected revision kept in the state and the status (their count besides)."""


@dataclass
class Revisions:
    """Which commit is applied, which was last tried, and why it was refused."""

    applied: str | None = None
    applied_at: float | None = None
    attempted: str | None = None
    attempted_at: float | None = None
    errors: list[Finding] = field(default_factory=list)
    """The first :data:`SHOWN_ERRORS` errors of the rejected revision."""
    error_count: int = 0
    """How many errors it had in all."""

    def reject(self, problems: Sequence[Finding]) -> None:
        self.errors, self.error_count = list(problems[:SHOWN_ERRORS]), len(problems)

    def clear_errors(self) -> None:
        self.errors, self.error_count = [], 0

    def to_meta(self) -> dict[str, object]:
        return {
            "last_applied_revision": self.applied,
            "last_applied_at": self.applied_at,
            "last_attempted_revision": self.attempted,
            "last_attempted_at": self.attempted_at,
            "validation_errors": [f.to_json() for f in self.errors],
            "validation_error_count": max(self.error_count, len(self.errors)),
        }


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")


class CheckDoc(TypedDict):
    """A check as JSON (``/api/v1/status``, the status page): :meth:`CheckView.to_json`."""

    name: str
    host: str
    type: str
    state: str
    hard_state: str
    state_type: str
    attempt: int
    max_attempts: int
    flapping: bool
    message: str
    value: float | None
    duration_s: float | None
    last_run: str | None
    last_state_change: str | None


@dataclass(frozen=True, slots=True)
class CheckView:
    """One check on one host. States are names (``OK``… or ``PENDING`` before a result)."""

    name: str
    host: str
    type: str
    state: str
    hard_state: str
    state_type: str
    attempt: int
    max_attempts: int
    flapping: bool
    message: str
    value: float | None
    duration_s: float | None
    last_run: str | None
    last_state_change: str | None

    def to_json(self) -> CheckDoc:
        return cast(CheckDoc, {f: getattr(self, f) for f in _CHECK_FIELDS})


_CHECK_FIELDS = tuple(CheckDoc.__annotations__)
"""CheckView's fields, in CheckDoc's order (a test checks that they are the same)."""


@dataclass(frozen=True, slots=True)
class ComponentView:
    id: str
    name: str | None
    type: str | None
    status: str
    """A :class:`~reconciler.model.status.ComponentStatus` value."""
    impacted_by: tuple[str, ...]
    impacted_by_more: int
    dependencies: tuple[str, ...]
    checks: tuple[CheckView, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "status": self.status,
            "impacted_by": list(self.impacted_by),
            "impacted_by_more": self.impacted_by_more,
            "dependencies": list(self.dependencies),
            "checks": [c.to_json() for c in self.checks],
        }


@dataclass(frozen=True, slots=True)
class MapView:
    name: str
    version: str | None
    components: tuple[ComponentView, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "components": [c.to_json() for c in self.components],
        }


@dataclass(frozen=True, slots=True)
class HostView:
    name: str
    reachable: bool
    checked_by: str | None = None
    """Replicas: the replica that checks this host (None: no replica is live, or one process)."""

    def to_json(self, *, replicas: bool) -> dict[str, Any]:
        shown: dict[str, Any] = {"name": self.name, "reachable": self.reachable}
        if replicas:
            shown["checked_by"] = self.checked_by
        return shown


@dataclass(frozen=True, slots=True)
class FleetView:
    """Replicas only: this replica, the live ones, the leader, and how many hosts each checks."""

    replica: str
    leader: str | None
    live: tuple[str, ...]
    hosts_by_replica: Mapping[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "replica": self.replica,
            "leader": self.leader,
            "is_leader": self.leader == self.replica,
            "live": list(self.live),
            "hosts_by_replica": dict(self.hosts_by_replica),
        }


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything ``/api/v1/status`` shows, and what the metrics are computed from."""

    last_applied_revision: str | None
    last_attempted_revision: str | None
    last_applied_at: str | None
    last_attempted_at: str | None
    last_applied_epoch: float | None
    revision_rejected: bool
    validation_errors: tuple[Finding, ...]
    validation_error_count: int
    hosts: tuple[HostView, ...]
    maps: tuple[MapView, ...]
    fetch_error: str | None = None
    ssh_connections: int = 0
    state_write_errors: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    """What fails to be written now (:meth:`~reconciler.store.writes.StateWrites.failing`)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """What the status extras add (:class:`~reconciler.loop.events.StatusExtras`): JSON."""
    fleet: FleetView | None = None
    """Replicas only (``opsmap run --replica``): who checks what, who leads."""

    def extra_count(self, key: str) -> float:
        """A number the extras hold under ``key`` (0 when absent)."""
        value = self.extra.get(key, 0)
        return float(value) if isinstance(value, int | float) else 0.0

    def to_json(self) -> dict[str, Any]:
        """The ``/api/v1/status`` document (its keys in this order)."""
        return {
            "last_applied_revision": self.last_applied_revision,
            "last_attempted_revision": self.last_attempted_revision,
            "last_applied_at": self.last_applied_at,
            "last_attempted_at": self.last_attempted_at,
            "last_applied_epoch": self.last_applied_epoch,
            "revision_rejected": self.revision_rejected,
            "validation_errors": [f.to_json() for f in self.validation_errors],
            "validation_error_count": self.validation_error_count,
            "hosts": [h.to_json(replicas=self.fleet is not None) for h in self.hosts],
            "maps": [m.to_json() for m in self.maps],
            "fetch_error": self.fetch_error,
            "ssh_connections": self.ssh_connections,
            "state_write_errors": {k: dict(v) for k, v in self.state_write_errors.items()},
            **({} if self.fleet is None else {"fleet": self.fleet.to_json()}),
            **self.extra,
        }


def build_snapshot(
    *,
    revisions: Revisions,
    repo: MapRepo | None,
    scheduled: Sequence[ScheduledCheck],
    statuses: Mapping[CheckKey, CheckStatus],
    wall_offset: float,
    actions: Mapping[tuple[str, str], ComponentStatus] | None = None,
    hosts_reachable: Mapping[str, bool] | None = None,
    fetch_error: str | None = None,
    ssh_connections: int = 0,
    state_write_errors: Mapping[str, Mapping[str, object]] | None = None,
    extra: Mapping[str, Any] | None = None,
    placement: Placement | None = None,
) -> Snapshot:
    """The snapshot of the loop's live state (on the event loop's thread): each map's
    components (:func:`_map_view`), each with its checks (:func:`check_view`)."""
    actions = actions or {}
    by_component: dict[tuple[str, str], list[ScheduledCheck]] = {}
    for check in scheduled:
        by_component.setdefault((check.key.map, check.key.component), []).append(check)
    maps = [
        _map_view(loaded.model, by_component, statuses, actions, wall_offset)
        for loaded in (repo.maps if repo else [])
    ]
    return Snapshot(
        last_applied_revision=revisions.applied,
        last_attempted_revision=revisions.attempted,
        last_applied_at=iso(revisions.applied_at),
        last_attempted_at=iso(revisions.attempted_at),
        last_applied_epoch=revisions.applied_at,
        revision_rejected=revisions.attempted is not None
        and revisions.attempted != revisions.applied,
        validation_errors=tuple(revisions.errors),
        validation_error_count=max(revisions.error_count, len(revisions.errors)),
        hosts=_hosts(scheduled, hosts_reachable or {}, placement),
        maps=tuple(maps),
        fetch_error=fetch_error,
        ssh_connections=ssh_connections,
        state_write_errors=dict(state_write_errors or {}),
        extra=dict(extra or {}),
        fleet=None if placement is None else _fleet(scheduled, placement),
    )


def _hosts(
    scheduled: Sequence[ScheduledCheck],
    reachable: Mapping[str, bool],
    placement: Placement | None,
) -> tuple[HostView, ...]:
    """Hosts as last reached; replicas: every scheduled host, with who checks it."""
    if placement is None:
        return tuple(HostView(name, up) for name, up in sorted(reachable.items()))
    names = sorted({c.key.host for c in scheduled} | reachable.keys())
    return tuple(HostView(n, reachable.get(n, True), placement.owner(n)) for n in names)


def _fleet(scheduled: Sequence[ScheduledCheck], placement: Placement) -> FleetView:
    counts = dict.fromkeys(placement.live, 0)
    for host in {c.key.host for c in scheduled}:
        owner = placement.owner(host)
        if owner is not None:
            counts[owner] = counts.get(owner, 0) + 1
    return FleetView(placement.me, placement.leader, placement.live, counts)


def _map_view(
    m: Map,
    by_component: Mapping[tuple[str, str], Sequence[ScheduledCheck]],
    statuses: Mapping[CheckKey, CheckStatus],
    actions: Mapping[tuple[str, str], ComponentStatus],
    wall_offset: float,
) -> MapView:
    """One map: each component's status from its checks' hard states (or the action
    running on it), and what it is impacted by below it."""
    status_of: dict[str, ComponentStatus] = {}
    for component in m.components:
        checks = by_component.get((m.name, component.id), ())
        hard = [statuses[c.key].hard_state if c.key in statuses else None for c in checks]
        status_of[component.id] = component_status(hard, action=actions.get((m.name, component.id)))
    impact = impacts({c.id: c.dependencies for c in m.components}, status_of)
    components = tuple(
        ComponentView(
            id=component.id,
            name=component.name,
            type=component.type,
            status=status_of[component.id].value,
            impacted_by=tuple(impact[component.id].causes),
            impacted_by_more=impact[component.id].more,
            dependencies=tuple(component.dependencies),
            checks=tuple(
                check_view(check, statuses.get(check.key) or CheckStatus(), wall_offset=wall_offset)
                for check in by_component.get((m.name, component.id), ())
            ),
        )
        for component in m.components
    )
    return MapView(m.name, m.version, components)


def check_view(check: ScheduledCheck, s: CheckStatus, *, wall_offset: float) -> CheckView:
    """One check on one host as shown; ``wall_offset`` turns monotonic times into epochs."""

    def wall(mono: float | None) -> str | None:
        return iso(None if mono is None else mono + wall_offset)

    return CheckView(
        name=check.key.check,
        host=check.key.host,
        type=check.target.check_type,
        state=s.state.name if s.state else "PENDING",
        hard_state=s.hard_state.name if s.hard_state else "PENDING",
        state_type=s.state_type.value,
        attempt=s.attempt,
        max_attempts=check.policy.max_attempts,
        flapping=s.flapping,
        message=s.message,
        value=s.value,
        duration_s=s.last_duration_s,
        last_run=wall(s.last_run),
        last_state_change=wall(s.last_hard_change),
    )


def encode_json(value: object) -> bytes:
    """Compact JSON and a newline, as the HTTP endpoint serves it."""
    return _encode(value).encode() + b"\n"


SLICE = 64
"""Items per call of the C encoder: about a quarter of a millisecond of the lock each."""


def _encode(value: object, depth: int = 6) -> str:
    """Compact JSON, written by the C encoder a slice at a time.

    The status of a large repo is megabytes: one call of the C encoder holds the
    interpreter lock for all of it (a map of 10,000 components is 2 MB, about 35 ms),
    away from the event loop (which serves HTTP). So a dict is written key by key, and a list in
    runs of at most :data:`SLICE` small items (:func:`_small`), each other item on its own,
    down to ``depth``.
    """
    if not depth or not isinstance(value, dict | list | tuple):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, dict):
        items = (json.dumps(str(k)) + ":" + _encode(v, depth - 1) for k, v in value.items())
        return "{" + ",".join(items) + "}"
    parts: list[str] = []
    run: list[object] = []
    for item in value:
        if not _small(item):
            if run:
                parts.append(json.dumps(run, separators=(",", ":"))[1:-1])
                run = []
            parts.append(_encode(item, depth - 1))
            continue
        run.append(item)
        if len(run) == SLICE:
            parts.append(json.dumps(run, separators=(",", ":"))[1:-1])
            run = []
    if run:
        parts.append(json.dumps(run, separators=(",", ":"))[1:-1])
    return "[" + ",".join(parts) + "]"


def _small(value: object) -> bool:
    """Whether ``value`` is quick to encode at once: no container in it, or in its own
    containers, holds more than :data:`SLICE` items (the status nests no deeper)."""
    if isinstance(value, dict):
        inner: Any = value.values()
    elif isinstance(value, list | tuple):
        inner = value
    else:
        return True
    if len(inner) > SLICE:
        return False
    for child in inner:
        if isinstance(child, dict | list | tuple):
            if len(child) > SLICE:
                return False
            grand = child.values() if isinstance(child, dict) else child
            if any(isinstance(g, dict | list | tuple) and len(g) > SLICE for g in grand):
                return False
    return True
