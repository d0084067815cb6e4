"""The state gauges, computed at each scrape from the typed snapshot the loop gives.

The seam is the snapshot source given to :class:`SnapshotCollector`: here a function that
returns a snapshot built by hand; the registry and the exposition are prometheus_client's.
"""

from __future__ import annotations

import dataclasses

from e2e_support import sample_value, samples
from prometheus_client import CollectorRegistry, generate_latest
from snapshots import SHA, snapshot

from reconciler.loop.metrics import Metrics, SnapshotCollector
from reconciler.loop.view import MapView, Snapshot


def scrape(snap: Snapshot) -> str:
    registry = CollectorRegistry()
    Metrics(registry)
    registry.register(SnapshotCollector(lambda: snap))
    return generate_latest(registry).decode()


def test_each_component_has_one_status_set_and_its_impact() -> None:
    text = scrape(snapshot())
    db = [s for s in samples(text) if s.name == "opsmap_component_status"
          and s.labels["component"] == "db"]  # fmt: skip
    assert {s.labels["status"]: s.value for s in db if s.value} == {"error": 1.0}
    assert len(db) > 1  # the other statuses are there, at 0
    assert sample_value(text, "opsmap_component_impacted", component="api") == 1.0
    assert sample_value(text, "opsmap_component_impacted", component="db") == 0.0


def test_checks_show_their_hard_state_and_flapping_per_host() -> None:
    text = scrape(snapshot())
    assert sample_value(text, "opsmap_check_status", check="port", host="h1") == 2.0
    assert sample_value(text, "opsmap_check_status", check="health", host="h2") == 0.0
    assert sample_value(text, "opsmap_check_flapping", check="port") == 1.0
    assert sample_value(text, "opsmap_check_flapping", check="health") == 0.0


def test_hosts_revision_and_counts_come_from_the_snapshot() -> None:
    text = scrape(snapshot(audit_pending=4))
    assert sample_value(text, "opsmap_host_reachable", host="h1") == 0.0
    assert sample_value(text, "opsmap_host_reachable", host="h2") == 1.0
    assert sample_value(text, "opsmap_applied_revision_info", revision=SHA) == 1.0
    assert sample_value(text, "opsmap_applied_revision_timestamp_seconds") == 1796119200.0
    assert sample_value(text, "opsmap_revision_rejected") == 1.0
    assert sample_value(text, "opsmap_ssh_connections") == 2.0
    assert sample_value(text, "opsmap_audit_pending") == 4.0


def test_a_component_gone_from_the_snapshot_is_gone_from_the_next_scrape() -> None:
    full = snapshot()
    current = [full]
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(lambda: current[0]))
    assert 'component="api"' in generate_latest(registry).decode()
    shop = full.maps[0]
    only_db = MapView(shop.name, shop.version, shop.components[:1])
    current[0] = dataclasses.replace(full, maps=(only_db,))
    text = generate_latest(registry).decode()
    assert 'component="api"' not in text
    assert sample_value(text, "opsmap_component_impacted", component="db") == 0.0
