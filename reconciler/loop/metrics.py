"""Prometheus metrics, defined once, on an injectable registry.

Counters and histograms are updated as things happen; every state (component and check
status, revisions, hosts, connections) is a gauge computed at scrape time from the latest
snapshot by :class:`SnapshotCollector`, so series of removed components disappear with
them. No counter carries a commit SHA or a host name. The gauges with a series per
component, check or host (:data:`STATE_FAMILIES`) are most of a fleet's exposition: a
scrape through :func:`expose` reuses their lines that did not change (:mod:`.exposition`).
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator
from contextlib import suppress
from contextvars import ContextVar
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from reconciler.loop.exposition import KeptLines, Sample, Scrape, encoder_key
from reconciler.loop.view import Snapshot
from reconciler.model.status import STATUSES
from reconciler.store.writes import WHATS
from reconciler.version import version

CHECK_STATE_VALUES = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}

SCRAPED: ContextVar[Snapshot | None] = ContextVar("opsmap_scraped_snapshot", default=None)
"""The snapshot a scrape passes to the state gauges (:func:`expose`)."""


RENDERING: ContextVar[Scrape | None] = ContextVar("opsmap_rendering", default=None)
"""The scrape that takes the state gauges' kept lines (:mod:`.exposition`), if any."""


def expose(registry: CollectorRegistry, snapshot: Snapshot, encoder: Callable[..., bytes]) -> bytes:
    """``encoder(registry)``, the state gauges computed from ``snapshot``: in any thread,
    as the snapshot is immutable (the loop builds it, a worker thread encodes it). The
    per-component, per-check and per-host gauges' lines are those kept from the last
    scrape where unchanged (:mod:`.exposition`): the same bytes, a fraction of the work."""
    key = encoder_key(encoder)
    scrape = None if key is None else Scrape(encoder, key)
    token, rendering = SCRAPED.set(snapshot), RENDERING.set(scrape)
    try:
        text = encoder(registry)
        if scrape is None or not scrape.parts:
            return text
        assembled = scrape.assemble(text)
        if assembled is not None:
            return assembled
        RENDERING.set(None)  # not as expected: the plain exposition
        return encoder(registry)
    finally:
        RENDERING.reset(rendering)
        SCRAPED.reset(token)


class Metrics:
    """The reconciler's counters and histograms; one instance per registry (a fresh one per
    test). The gauges are the :class:`SnapshotCollector` the reconciler adds to it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series are noise
        self.registry = registry
        self.reconcile_total = Counter(
            "opsmap_reconcile", "Revisions reconciled, by result", ["result"], registry=registry
        )
        self.git_fetch_total = Counter(
            "opsmap_git_fetch", "Fetches of the map repo, by result", ["result"], registry=registry
        )
        self.check_runs_total = Counter(
            "opsmap_check_runs",
            "Check runs, by state",
            ["map", "component", "check", "state"],
            registry=registry,
        )
        self.check_duration = Histogram(
            "opsmap_check_duration_seconds",
            "Duration of check runs",
            ["map", "component", "check"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )
        self.check_schedule_lag = Histogram(
            "opsmap_check_schedule_lag_seconds",
            "How late checks start: from the time a check is due to its start",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.actions_total = Counter(
            "opsmap_actions",
            "Actions run for requests, by result",
            ["map", "component", "action", "result"],
            registry=registry,
        )
        self.requests_total = Counter(
            "opsmap_requests", "Requests processed, by result", ["result"], registry=registry
        )
        self.webhook_total = Counter(
            "opsmap_webhook_requests", "Webhook calls, by result", ["result"], registry=registry
        )
        self.state_write_errors_total = Counter(
            "opsmap_state_write_errors",
            "Writes to the state database that failed (disk full, I/O error, locked), by what",
            ["what"],
            registry=registry,
        )
        for what in WHATS:  # every series from the start, so that an increase shows
            self.state_write_errors_total.labels(what)
        self.build_info = Gauge(
            "opsmap_build_info",
            "Always 1: the OpsMap version and the Python running it",
            ["version", "python"],
            registry=registry,
        )
        self.build_info.labels(version(), platform.python_version()).set(1)

    def state_write_failed(self, what: str) -> None:
        self.state_write_errors_total.labels(what).inc()

    def forget_check(self, map_name: str, component: str, check: str) -> None:
        """Drop the series of a check that no longer exists (absent series are fine)."""
        labels = (map_name, component, check)
        with suppress(KeyError):
            self.check_duration.remove(*labels)
        for state in CHECK_STATE_VALUES:
            with suppress(KeyError):
                self.check_runs_total.remove(*labels, state)


@dataclass(frozen=True)
class _Family:
    """A state gauge with a series per component, check or host."""

    name: str
    documentation: str
    labels: tuple[str, ...]
    samples: Callable[[Snapshot], Iterator[Sample]]


def _component_samples(snap: Snapshot) -> Iterator[Sample]:
    for m in snap.maps:
        for c in m.components:
            for status in STATUSES:
                yield (m.name, c.id, status), float(c.status == status)


def _impacted_samples(snap: Snapshot) -> Iterator[Sample]:
    for m in snap.maps:
        for c in m.components:
            yield (m.name, c.id), float(bool(c.impacted_by))


def _check_samples(snap: Snapshot) -> Iterator[Sample]:
    for m in snap.maps:
        for c in m.components:
            for k in c.checks:
                yield (m.name, c.id, k.name, k.host), float(CHECK_STATE_VALUES.get(k.hard_state, 3))


def _flapping_samples(snap: Snapshot) -> Iterator[Sample]:
    for m in snap.maps:
        for c in m.components:
            for k in c.checks:
                yield (m.name, c.id, k.name, k.host), float(k.flapping)


def _host_samples(snap: Snapshot) -> Iterator[Sample]:
    for host in snap.hosts:
        yield (host.name,), float(host.reachable)


_CHECK_LABELS = ("map", "component", "check", "host")
STATE_FAMILIES = (
    _Family(
        "opsmap_component_status",
        "1 for the component's current status, 0 for the others",
        ("map", "component", "status"),
        _component_samples,
    ),
    _Family(
        "opsmap_component_impacted",
        "1 when a dependency of the component is in error or unknown",
        ("map", "component"),
        _impacted_samples,
    ),
    _Family(
        "opsmap_check_status",
        "Hard state of a check on a host: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN or pending",
        _CHECK_LABELS,
        _check_samples,
    ),
    _Family(
        "opsmap_check_flapping", "1 while a check is flapping", _CHECK_LABELS, _flapping_samples
    ),
    _Family(
        "opsmap_host_reachable",
        "1 when the last attempt to reach the host succeeded",
        ("host",),
        _host_samples,
    ),
)
"""The gauges whose series grow with the repo and the fleet, in the order they are yielded."""


class SnapshotCollector(Collector):
    """State gauges, computed from the latest snapshot at each scrape."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot
        self._kept = KeptLines()
        """The lines of the last scrapes' state gauges (:func:`expose`)."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())

    def collect(self) -> Iterator[GaugeMetricFamily | InfoMetricFamily]:
        snap = self._snapshot()
        scrape = RENDERING.get()
        for family in STATE_FAMILIES:
            gauge = GaugeMetricFamily(family.name, family.documentation, labels=family.labels)
            samples = family.samples(snap)
            if scrape is None or not scrape.render(
                self._kept, family.name, family.documentation, family.labels, samples
            ):
                for values, value in family.samples(snap):
                    gauge.add_metric(values, value)
            yield gauge  # without samples: the scrape puts its lines under its header
        if snap.fleet is not None:
            yield from _fleet_metrics(snap)

        revision = InfoMetricFamily(
            "opsmap_applied_revision", "The applied revision of the map repo"
        )
        if snap.last_applied_revision:
            revision.add_metric([], {"revision": snap.last_applied_revision})
        yield revision
        applied_time = GaugeMetricFamily(
            "opsmap_applied_revision_timestamp_seconds", "When the applied revision was applied"
        )
        if snap.last_applied_epoch is not None:
            applied_time.add_metric([], snap.last_applied_epoch)
        yield applied_time
        yield GaugeMetricFamily(
            "opsmap_revision_rejected",
            "1 while the newest revision is invalid and an older one is kept",
            value=float(snap.revision_rejected),
        )
        yield GaugeMetricFamily(
            "opsmap_ssh_connections",
            "Open SSH connections",
            value=float(snap.ssh_connections),
        )
        yield GaugeMetricFamily(
            "opsmap_audit_pending",
            "Audit records not yet pushed to the remote",
            value=snap.extra_count("audit_pending"),
        )


def _fleet_metrics(snap: Snapshot) -> Iterator[GaugeMetricFamily]:
    """Replicas: who this one is, who leads, and how many hosts each live replica checks."""
    fleet = snap.fleet
    assert fleet is not None
    info = GaugeMetricFamily(
        "opsmap_replica_info",
        "1, labelled with this replica's id (opsmap run --replica)",
        labels=["replica"],
    )
    info.add_metric([fleet.replica], 1.0)
    leader = GaugeMetricFamily(
        "opsmap_leader",
        "1 for the live replica that holds the leader lease, 0 for the others",
        labels=["replica"],
    )
    hosts = GaugeMetricFamily(
        "opsmap_replica_hosts", "Hosts each live replica checks", labels=["replica"]
    )
    for replica in fleet.live:
        leader.add_metric([replica], float(replica == fleet.leader))
        hosts.add_metric([replica], float(fleet.hosts_by_replica.get(replica, 0)))
    yield from (info, leader, hosts)
