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
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, cast

from agentless.result import CheckState
from reconciler.findings import Finding, Location, Severity
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

    def restore(self, meta: Mapping[str, object]) -> None:
        """Take back what :meth:`to_meta` saved (what is missing or malformed stays unset)."""
        self.applied = _str_or_none(meta.get("last_applied_revision"))
        self.attempted = _str_or_none(meta.get("last_attempted_revision"))
        self.applied_at = _float_or_none(meta.get("last_applied_at"))
        self.attempted_at = _float_or_none(meta.get("last_attempted_at"))
        stored_errors = meta.get("validation_errors")
        if isinstance(stored_errors, list):
            self.reject([_finding_from_json(e) for e in stored_errors if isinstance(e, dict)])
            count = meta.get("validation_error_count")
            if isinstance(count, int):
                self.error_count = max(count, len(self.errors))

    def to_meta(self) -> dict[str, object]:
        return {
            "last_applied_revision": self.applied,
            "last_applied_at": self.applied_at,
            "last_attempted_revision": self.attempted,
            "last_attempted_at": self.attempted_at,
            "validation_errors": [f.to_json() for f in self.errors],
            "validation_error_count": max(self.error_count, len(self.errors)),
        }


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _float_or_none(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _finding_from_json(data: dict[str, Any]) -> Finding:
    location = Location(
        str(data.get("file", "")), int(data.get("line", 1)), int(data.get("column", 1))
    )
    return Finding(
        location, Severity.ERROR, str(data.get("code", "")), str(data.get("message", ""))
    )


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
    branch: str | None = None
    """The branch followed (``--branch``, or the one the remote's HEAD names)."""
    ssh_connections: int = 0
    state_write_errors: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    """What fails to be written now (:meth:`~reconciler.store.writes.StateWrites.failing`)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """What the status extras add (:class:`~reconciler.loop.events.StatusExtras`): JSON."""
    fleet: FleetView | None = None
    """Replicas only (``opsmap run --replica``): who checks what, who leads."""
    operator: bool = True
    """The operator's snapshot, whose document shows the fetch error, the SSH connections
    and the state write errors; False: one viewer's (:func:`~.viewers.seen_by`), without."""

    def extra_count(self, key: str) -> float:
        """A number the extras hold under ``key`` (0 when absent)."""
        value = self.extra.get(key, 0)
        return float(value) if isinstance(value, int | float) else 0.0

    def to_json(self) -> dict[str, Any]:
        """The ``/api/v1/status`` document (its keys in this order)."""
        return self.document([m.to_json() for m in self.maps])

    def document(self, maps: object) -> dict[str, Any]:
        """:meth:`to_json` with ``maps`` for its maps (:mod:`.statusjson`: already JSON)."""
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
            "maps": maps,
            "branch": self.branch,
            **(self._operators() if self.operator else {}),
            **({} if self.fleet is None else {"fleet": self.fleet.to_json()}),
            **self.extra,
        }

    def _operators(self) -> dict[str, Any]:
        return {
            "fetch_error": self.fetch_error,
            "ssh_connections": self.ssh_connections,
            "state_write_errors": {k: dict(v) for k, v in self.state_write_errors.items()},
        }


_Kept = tuple[CheckStatus | None, str, int, CheckView]
"""A kept view: the status it shows (the object itself), the check's type and attempts."""


_Grouped = Mapping[tuple[str, str], Sequence[ScheduledCheck]]
"""Checks by map and component."""


def _group(scheduled: Sequence[ScheduledCheck]) -> _Grouped:
    grouped: dict[tuple[str, str], list[ScheduledCheck]] = {}
    for check in scheduled:
        grouped.setdefault((check.key.map, check.key.component), []).append(check)
    return grouped


class CheckViews:
    """Each check's :class:`CheckView`, kept from one snapshot to the next.

    A fleet's snapshot shows thousands of checks, most unchanged since the last one, and
    building every view again (two timestamps formatted each) was most of the snapshot's
    time on the loop: 38 ms at 5,000 checks, for each read of the state. So a view is built
    when its check changes, a few microseconds at a time: :meth:`update`, from the
    reconciler's result hook (the only place where a status is changed in place). A
    status that another object replaced (restored, observed from another replica), a
    check whose type or attempts a revision changed, and a check never seen are told
    apart by :meth:`get`, which builds those again. A revision's checks are all that is
    kept (:meth:`applied`). On the loop's thread only.
    """

    def __init__(self, wall_offset: float) -> None:
        self.wall_offset = wall_offset
        """What turns monotonic times into epochs (the reconciler's, fixed)."""
        self._views: dict[CheckKey, _Kept] = {}
        self.generation = 0
        """Counts the views built and the revisions applied: a snapshot older than the
        last change shows a different number (so that no reader reuses it)."""
        self._grouped: tuple[Sequence[ScheduledCheck], _Grouped] | None = None
        """The applied revision's checks, and by component (:meth:`applied`)."""

    def update(self, check: ScheduledCheck, status: CheckStatus | None) -> CheckView:
        """The view of ``status`` (None: not run yet), kept for the next snapshots."""
        return self._keep(check, status)[3]

    def get(self, check: ScheduledCheck, status: CheckStatus | None) -> CheckView:
        """The view kept for ``check`` if it shows ``status`` as the check is now, else
        a new one (kept)."""
        kept = self._views.get(check.key)
        if (
            kept is None
            or kept[0] is not status
            or kept[1] != check.target.check_type
            or kept[2] != check.policy.max_attempts
        ):
            kept = self._keep(check, status)
        return kept[3]

    def applied(self, scheduled: Sequence[ScheduledCheck]) -> None:
        """A revision is applied (``scheduled`` is its checks, a sequence not changed
        after): forget the checks that are gone with it (what is kept never outgrows the
        repo), and group its checks by component once for all its snapshots."""
        keys = {check.key for check in scheduled}
        self._views = {k: v for k, v in self._views.items() if k in keys}
        self._grouped = (scheduled, _group(scheduled))
        self.generation += 1

    def by_component(self, scheduled: Sequence[ScheduledCheck]) -> _Grouped:
        """``scheduled`` by map and component: grouped once if it is the applied one."""
        if self._grouped is not None and self._grouped[0] is scheduled:
            return self._grouped[1]
        return _group(scheduled)

    def _keep(self, check: ScheduledCheck, status: CheckStatus | None) -> _Kept:
        view = check_view(check, status or CheckStatus(), wall_offset=self.wall_offset)
        kept = (status, check.target.check_type, check.policy.max_attempts, view)
        self._views[check.key] = kept
        self.generation += 1
        return kept


def build_snapshot(
    *,
    revisions: Revisions,
    repo: MapRepo | None,
    scheduled: Sequence[ScheduledCheck],
    statuses: Mapping[CheckKey, CheckStatus],
    wall_offset: float,
    views: CheckViews | None = None,
    actions: Mapping[tuple[str, str], ComponentStatus] | None = None,
    hosts_reachable: Mapping[str, bool] | None = None,
    fetch_error: str | None = None,
    branch: str | None = None,
    ssh_connections: int = 0,
    state_write_errors: Mapping[str, Mapping[str, object]] | None = None,
    extra: Mapping[str, Any] | None = None,
    placement: Placement | None = None,
) -> Snapshot:
    """The snapshot of the loop's live state (on the event loop's thread): each map's
    components (:func:`_map_view`), each with its checks (``views``, the reconciler's
    :class:`CheckViews`: the views of the checks unchanged since the last snapshot are
    those it built; None: every view built now)."""
    actions = actions or {}
    views = views if views is not None else CheckViews(wall_offset)
    by_component = views.by_component(scheduled)
    maps = [
        _map_view(loaded.model, by_component, statuses, actions, views)
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
        branch=branch,
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
    by_component: _Grouped,
    statuses: Mapping[CheckKey, CheckStatus],
    actions: Mapping[tuple[str, str], ComponentStatus],
    views: CheckViews,
) -> MapView:
    """One map: each component's status from its checks' hard states (or the action
    running on it), and what it is impacted by below it."""
    status_of: dict[str, ComponentStatus] = {}
    checks_of: dict[str, tuple[CheckView, ...]] = {}
    for component in m.components:
        hard: list[CheckState | None] = []
        shown: list[CheckView] = []
        for check in by_component.get((m.name, component.id), ()):  # one read of each status
            status = statuses.get(check.key)
            hard.append(None if status is None else status.hard_state)
            shown.append(views.get(check, status))
        status_of[component.id] = component_status(hard, action=actions.get((m.name, component.id)))
        checks_of[component.id] = tuple(shown)
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
            checks=checks_of[component.id],
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


@dataclass(frozen=True, slots=True)
class Raw:
    """Text already JSON, written as it is by :func:`encode_json`."""

    text: str


def encode_json(value: object) -> bytes:
    """Compact JSON and a newline, as the HTTP endpoint serves it."""
    return _encode(value).encode() + b"\n"


RUN_ITEMS = 1024
"""Items (all those nested in them counted) per call of the C encoder: a fraction of a
millisecond of the interpreter lock each (64 checks of a fleet's status, 20 kB)."""


def _encode(value: object, depth: int = 6) -> str:
    """Compact JSON, written by the C encoder a run of items at a time.

    The status of a large repo is megabytes: one call of the C encoder holds the
    interpreter lock for all of it (5,000 checks are 1.6 MB, about 40 ms; a map of 10,000
    components 2 MB), away from the event loop (which serves HTTP). So a dict is written
    key by key, and a list in runs of items that hold at most :data:`RUN_ITEMS` in all
    (:func:`_size`: a component's checks, a map's components), each larger item on its
    own, down to ``depth``.
    """
    if isinstance(value, Raw):
        return value.text
    if not depth or not isinstance(value, dict | list | tuple):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, dict):
        items = (json.dumps(str(k)) + ":" + _encode(v, depth - 1) for k, v in value.items())
        return "{" + ",".join(items) + "}"
    parts: list[str] = []
    run: list[object] = []
    held = 0
    for item in value:
        size = _size(item, RUN_ITEMS)
        if run and held + size > RUN_ITEMS:
            parts.append(json.dumps(run, separators=(",", ":"))[1:-1])
            run, held = [], 0
        if size > RUN_ITEMS:
            parts.append(_encode(item, depth - 1))
            continue
        run.append(item)
        held += size
    if run:
        parts.append(json.dumps(run, separators=(",", ":"))[1:-1])
    return "[" + ",".join(parts) + "]"


def _size(value: object, limit: int, depth: int = 6) -> int:
    """1 for a scalar; for a container, 1 and every item nested in it, counted until the
    count passes ``limit`` (past ``depth`` levels: more than ``limit``)."""
    if isinstance(value, dict):
        inner: Collection[object] = value.values()
    elif isinstance(value, list | tuple):
        inner = value
    else:
        return 1
    if not depth:
        return limit + 1
    count = 1 + len(inner)
    for child in inner:
        if count > limit:
            break
        if isinstance(child, dict | list | tuple):
            count += _size(child, limit - count, depth - 1) - 1
    return count
