"""Component status: the worst hard state of its checks on all its hosts, and impact."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence

from agentless.result import CheckState
from reconciler.model.depgraph import Impact, root_causes


class ComponentStatus(enum.Enum):
    OK = "ok"
    WARNING = "warning"
    UNKNOWN = "unknown"
    ERROR = "error"
    STARTING = "starting"
    STOPPING = "stopping"


STATUSES: tuple[str, ...] = tuple(s.value for s in ComponentStatus)
_FROM_CHECK = {
    CheckState.OK: ComponentStatus.OK,
    CheckState.WARNING: ComponentStatus.WARNING,
    CheckState.UNKNOWN: ComponentStatus.UNKNOWN,
    CheckState.CRITICAL: ComponentStatus.ERROR,
}
_SEVERITY = [
    ComponentStatus.OK,
    ComponentStatus.WARNING,
    ComponentStatus.UNKNOWN,
    ComponentStatus.ERROR,
]
IMPACTING = frozenset({ComponentStatus.ERROR, ComponentStatus.UNKNOWN})


def component_status(
    hard_states: Iterable[CheckState | None], *, action: ComponentStatus | None = None
) -> ComponentStatus:
    """The worst of the hard states; a pending check (None) or none at all is UNKNOWN.

    While an action runs, ``action`` (STARTING or STOPPING) is shown instead.
    """
    if action is not None:
        return action
    worst: ComponentStatus | None = None
    for state in hard_states:
        status = ComponentStatus.UNKNOWN if state is None else _FROM_CHECK[state]
        if worst is None or _SEVERITY.index(status) > _SEVERITY.index(worst):
            worst = status
    return worst or ComponentStatus.UNKNOWN


def impacts(
    dependencies: Mapping[str, Sequence[str]],
    statuses: Mapping[str, ComponentStatus],
) -> dict[str, Impact]:
    """Every component's impact: declared dependencies, direct or not, in error or unknown.

    One pass over the map (see :func:`reconciler.model.depgraph.root_causes`): direct ones
    first, at most :data:`~reconciler.model.depgraph.SHOWN_IDS` named, ``more`` when there are
    others. External dependencies (not in ``statuses``) are not observed and never listed.
    The component's own status is left as it is.
    """
    graph = {cid: dependencies.get(cid, ()) for cid in statuses}
    return root_causes(graph, lambda cid: statuses[cid] in IMPACTING)
