"""A snapshot as one viewer may see it: :func:`seen_by`, the filter of ``/api/v1/status``
and of the status page's documents when identities are enforced.

Whatever is not shown is left out, not blanked: a hidden map, component, host or request
is absent, and no count tells how many there were. What a viewer is shown:

- the maps and components its :class:`~reconciler.policy.visibility.Sight` sees, each
  component's dependencies and the causes of its impact among those only (a cause the
  viewer may not see is neither named nor counted);
- the hosts that the shown components' checks run on, and no replica's name;
- the revisions (applied, attempted, when, whether rejected) and how many errors the
  rejected one had, without the errors: their files and messages may be any map's;
- the requests whose target it sees (:data:`RequestTarget` says what each targets), and
  their number;
- nothing of what only the operator reads: the fetch error, the SSH connections, the state
  write errors, the audit backlog and its delivery error, the request waiting for the
  state, the fleet (:attr:`~reconciler.loop.view.Snapshot.operator`).

Pure, on immutable parts: it runs in the encoding threads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from reconciler.loop.view import ComponentView, MapView, Snapshot
from reconciler.policy.visibility import Sight


class Target(NamedTuple):
    """What a request names: a map, a component (``*``: the whole map), an action."""

    map: str
    component: str
    action: str | None = None


RequestTarget = Callable[[str], Target | None]
"""A request file's target, or None when it is not known (a viewer then does not see the
request)."""


def seen_by(snapshot: Snapshot, sight: Sight, *, target: RequestTarget) -> Snapshot:
    """``snapshot`` as ``sight`` sees it (itself when everything is seen)."""
    if sight.everything:
        return snapshot
    maps = tuple(shown for m in snapshot.maps if (shown := seen_map(m, sight)) is not None)
    hosts = {check.host for m in maps for c in m.components for check in c.checks}
    requests = [r for r in _requests(snapshot.extra) if _request_seen(r, sight, target)]
    return Snapshot(
        branch=snapshot.branch,
        last_applied_revision=snapshot.last_applied_revision,
        last_attempted_revision=snapshot.last_attempted_revision,
        last_applied_at=snapshot.last_applied_at,
        last_attempted_at=snapshot.last_attempted_at,
        last_applied_epoch=snapshot.last_applied_epoch,
        revision_rejected=snapshot.revision_rejected,
        validation_errors=(),
        validation_error_count=snapshot.validation_error_count,
        hosts=tuple(
            dataclasses.replace(h, checked_by=None) for h in snapshot.hosts if h.name in hosts
        ),
        maps=maps,
        extra={"requests": requests, "request_count": len(requests)},
        operator=False,
    )


def seen_map(m: MapView, sight: Sight) -> MapView | None:
    """The map with the components ``sight`` sees (None: the map is not seen)."""
    if sight.everything:
        return m
    if not sight.map(m.name):
        return None
    shown = {c.id for c in m.components if sight.component(m.name, c.id)}
    components = tuple(_component(c, shown) for c in m.components if c.id in shown)
    return dataclasses.replace(m, components=components)


def _component(c: ComponentView, shown: set[str]) -> ComponentView:
    return dataclasses.replace(
        c,
        impacted_by=tuple(i for i in c.impacted_by if i in shown),
        impacted_by_more=0,
        dependencies=tuple(d for d in c.dependencies if d in shown),
    )


def _requests(extra: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    shown = extra.get("requests")
    if not isinstance(shown, list):
        return []
    return [r for r in shown if isinstance(r, Mapping)]


def _request_seen(request: Mapping[str, Any], sight: Sight, target: RequestTarget) -> bool:
    path = request.get("path")
    found = target(path) if isinstance(path, str) else None
    return found is not None and sight.target(found.map, found.component)
