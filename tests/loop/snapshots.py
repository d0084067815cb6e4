"""A typed snapshot built by hand: one map, two components, a check each, two hosts."""

from __future__ import annotations

from typing import Any

from reconciler.findings import Finding, Location, Severity
from reconciler.loop.view import CheckView, ComponentView, HostView, MapView, Snapshot

SHA = "a" * 40
NEWER = "b" * 40


def check(name: str, host: str, hard: str, *, flapping: bool = False) -> CheckView:
    return CheckView(
        name=name,
        host=host,
        type="command",
        state=hard,
        hard_state=hard,
        state_type="hard",
        attempt=1,
        max_attempts=3,
        flapping=flapping,
        message="exit 2",
        value=None,
        duration_s=0.25,
        last_run="2026-12-01T10:00:00+00:00",
        last_state_change=None,
    )


def snapshot(**extra: Any) -> Snapshot:
    db = ComponentView(
        id="db",
        name="Database",
        type="database",
        status="error",
        impacted_by=(),
        impacted_by_more=0,
        dependencies=(),
        checks=(check("port", "h1", "CRITICAL", flapping=True),),
    )
    api = ComponentView(
        id="api",
        name=None,
        type="service",
        status="ok",
        impacted_by=("db",),
        impacted_by_more=0,
        dependencies=("db",),
        checks=(check("health", "h2", "OK"),),
    )
    problem = Finding(Location("maps/shop.yaml", 3, 5), Severity.ERROR, "E1", "bad")
    return Snapshot(
        last_applied_revision=SHA,
        last_attempted_revision=NEWER,
        last_applied_at="2026-12-01T10:00:00+00:00",
        last_attempted_at="2026-12-01T10:05:00+00:00",
        last_applied_epoch=1796119200.0,
        revision_rejected=True,
        validation_errors=(problem,),
        validation_error_count=7,
        hosts=(HostView("h1", False), HostView("h2", True)),
        maps=(MapView("shop", "1.0", (db, api)),),
        fetch_error=None,
        ssh_connections=2,
        state_write_errors={"audit": {"reason": "disk full", "since": 1.0, "failures": 3}},
        extra=extra,
    )
