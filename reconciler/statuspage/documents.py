"""The JSON documents behind the overview and the map view (``/api/v1/maps[/{map}]``).

Each is a TypedDict built from the loop's :class:`~reconciler.loop.view.Snapshot` and the
applied repo, filtered for the viewer (:class:`~reconciler.statuspage.access.Access`).
Text in them comes from the repo and the hosts: the browser inserts it as text only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from reconciler.loop.view import ComponentView, MapView, Snapshot
from reconciler.loop.viewers import seen_by, seen_map
from reconciler.model.status import STATUSES
from reconciler.repo.loader import MapRepo
from reconciler.statuspage.access import Access
from reconciler.statuspage.layout import NODE_H, NODE_W, layout
from reconciler.statuspage.pagesource import now_iso


class ViewerDoc(TypedDict):
    user: str | None
    filtered: bool
    """False: no trusted identity applies; every visitor sees the same page."""


class ErrorDoc(TypedDict):
    file: str
    line: int
    column: int
    code: str
    message: str


class RevisionDoc(TypedDict):
    applied: str | None
    applied_at: str | None
    attempted: str | None
    attempted_at: str | None
    rejected: bool
    errors: list[ErrorDoc]
    """The rejected revision's first errors (for a filtered viewer: none, see error_count)."""
    error_count: int
    fetch_error: str | None


class HostDoc(TypedDict):
    name: str
    reachable: bool


class AuditDoc(TypedDict):
    pending: int
    unstored: int
    delivery_error: str | None


class MapSummary(TypedDict):
    name: str
    version: str | None
    description: str | None
    components: int
    counts: dict[str, int]
    """Components by status: every status of :data:`~reconciler.model.status.STATUSES`."""
    impacted: int


class Overview(TypedDict):
    """``GET /api/v1/maps``."""

    generated_at: str
    viewer: ViewerDoc
    revision: RevisionDoc
    hosts: list[HostDoc]
    audit: AuditDoc | None
    """None for a filtered viewer: the audit trail is the operator's."""
    maps: list[MapSummary]


class NodeDoc(TypedDict):
    id: str
    name: str | None
    type: str | None
    status: str
    external: bool
    """Named as a dependency, not declared by the map."""
    impacted: bool
    impacted_by: list[str]
    checks: int
    ok_checks: int
    """Checks whose hard state is OK (the others are failing, or have no result yet)."""
    x: int
    y: int
    layer: int


class EdgeDoc(TypedDict):
    source: str
    """The dependent (drawn above)."""
    target: str
    """What it depends on."""


class GraphDoc(TypedDict):
    width: int
    height: int
    node_width: int
    node_height: int
    nodes: list[NodeDoc]
    edges: list[EdgeDoc]


class MapDoc(TypedDict):
    """``GET /api/v1/maps/{map}``."""

    generated_at: str
    viewer: ViewerDoc
    name: str
    version: str | None
    description: str | None
    counts: dict[str, int]
    graph: GraphDoc


def viewer_doc(access: Access) -> ViewerDoc:
    return {"user": access.user, "filtered": access.filtered}


def counts(components: Sequence[ComponentView]) -> dict[str, int]:
    tally = dict.fromkeys(STATUSES, 0)
    for c in components:
        tally[c.status] = tally.get(c.status, 0) + 1
    return tally


def _no_request(path: str) -> None:
    """The overview shows no request: none needs its target."""
    return None


def overview(snapshot: Snapshot, repo: MapRepo | None, access: Access) -> Overview:
    """The overview of what the viewer sees (:func:`~reconciler.loop.viewers.seen_by`)."""
    seen = seen_by(snapshot, access.sight, target=_no_request)
    described: dict[str, str | None] = (
        {str(m.model.name): m.model.description for m in repo.maps} if repo else {}
    )
    errors: list[ErrorDoc] = []
    for finding in seen.validation_errors:
        j = finding.to_json()
        errors.append(
            {
                "file": str(j["file"]),
                "line": finding.location.line,
                "column": finding.location.column,
                "code": finding.code,
                "message": str(j["message"]),
            }
        )
    return {
        "generated_at": now_iso(),
        "viewer": viewer_doc(access),
        "revision": {
            "applied": seen.last_applied_revision,
            "applied_at": seen.last_applied_at,
            "attempted": seen.last_attempted_revision,
            "attempted_at": seen.last_attempted_at,
            "rejected": seen.revision_rejected,
            "errors": errors,
            "error_count": seen.validation_error_count,
            "fetch_error": seen.fetch_error if seen.operator else None,
        },
        "hosts": [{"name": h.name, "reachable": h.reachable} for h in seen.hosts],
        "audit": _audit(seen) if seen.operator else None,
        "maps": [
            {
                "name": view.name,
                "version": view.version,
                "description": described.get(view.name),
                "components": len(view.components),
                "counts": counts(view.components),
                "impacted": sum(1 for c in view.components if c.impacted_by),
            }
            for view in seen.maps
        ],
    }


def _audit(snapshot: Snapshot) -> AuditDoc:
    delivery_error = snapshot.extra.get("audit_delivery_error")
    return {
        "pending": int(snapshot.extra_count("audit_pending")),
        "unstored": int(snapshot.extra_count("audit_unstored")),
        "delivery_error": delivery_error if isinstance(delivery_error, str) else None,
    }


def find_map(snapshot: Snapshot, name: str, access: Access) -> MapView | None:
    """The map as the viewer sees it (only its components the viewer may view); None when
    there is no such map or the viewer may not see it (the same answer)."""
    view = next((m for m in snapshot.maps if m.name == name), None)
    return None if view is None else seen_map(view, access.sight)


def map_doc(view: MapView, repo: MapRepo | None, access: Access) -> MapDoc:
    """``view`` as :func:`find_map` gives it: a filtered viewer's holds only what it sees
    (no external component either: its dependencies are among those it sees)."""
    components = list(view.components)
    shown = {c.id for c in components}
    model = repo.map(view.name) if repo else None
    external = list(dict.fromkeys(d for c in components for d in c.dependencies if d not in shown))
    nodes = [c.id for c in components] + external
    dependencies = {
        c.id: [d for d in c.dependencies if d in shown or d in external] for c in components
    }
    box = layout(nodes, dependencies)
    placed = {p.id: p for p in box.nodes}
    docs: list[NodeDoc] = []
    for c in components:
        p = placed[c.id]
        causes = list(c.impacted_by)
        docs.append(
            {
                "id": c.id,
                "name": c.name,
                "type": c.type,
                "status": c.status,
                "external": False,
                "impacted": bool(c.impacted_by),
                "impacted_by": causes,
                "checks": len(c.checks),
                "ok_checks": sum(1 for k in c.checks if k.hard_state == "OK"),
                "x": p.x,
                "y": p.y,
                "layer": p.layer,
            }
        )
    for ext in external:
        p = placed[ext]
        docs.append(
            {
                "id": ext,
                "name": None,
                "type": None,
                "status": "unknown",
                "external": True,
                "impacted": False,
                "impacted_by": [],
                "checks": 0,
                "ok_checks": 0,
                "x": p.x,
                "y": p.y,
                "layer": p.layer,
            }
        )
    return {
        "generated_at": now_iso(),
        "viewer": viewer_doc(access),
        "name": view.name,
        "version": view.version,
        "description": model.description if model else None,
        "counts": counts(components),
        "graph": {
            "width": box.width,
            "height": box.height,
            "node_width": NODE_W,
            "node_height": NODE_H,
            "nodes": docs,
            "edges": [
                {"source": source, "target": target}
                for source, targets in dependencies.items()
                for target in dict.fromkeys(targets)
            ],
        },
    }
