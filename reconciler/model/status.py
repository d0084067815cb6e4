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
_SEVERITY = [  # in increasing order of badness
    ComponentStatus.OK,
    ComponentStatus.WARNING,
    ComponentStatus.UNKNOWN,
    ComponentStatus.ERROR,
]
_OK, _WARNING, _CRITICAL, _UNKNOWN = (
    CheckState.OK,
    CheckState.WARNING,
    CheckState.CRITICAL,
    CheckState.UNKNOWN,
)  # module constants: an enum member read from its class costs a descriptor call
IMPACTING = frozenset({ComponentStatus.ERROR, ComponentStatus.UNKNOWN})


def component_status(
    hard_states: Iterable[CheckState | None], *, action: ComponentStatus | None = None
) -> ComponentStatus:
    """The worst of the hard states; a pending check (None) or none at all is UNKNOWN.

    While an action runs, ``action`` (STARTING or STOPPING) is shown instead.
    """
    if action is not None:
        return action
    seen, worst = False, 0
    for state in hard_states:  # by identity: a fleet's component has thousands of checks
        seen = True
        if state is _CRITICAL:
            return ComponentStatus.ERROR  # nothing is worse
        if state is None or state is _UNKNOWN:
            worst = 2
        elif state is _WARNING:
            worst = max(worst, 1)
        elif state is not _OK:
            raise ValueError(f"not a check state: {state!r}")
    return _SEVERITY[worst] if seen else ComponentStatus.UNKNOWN


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
