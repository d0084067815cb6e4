"""Action execution: run a map's declared actions on hosts, and what they did.

See :mod:`reconciler.actions.runner` (running) and :mod:`reconciler.actions.outcome`
(results, as JSON for audit records).
"""

from reconciler.actions.outcome import (
    DEFAULT_OUTPUT_LIMIT,
    ActionOutcome,
    CompletionOutcome,
    HostOutcome,
    Step,
    StepStatus,
    excerpt,
    stream_digest,
)
from reconciler.actions.runner import (
    PHASES,
    ActionRunner,
    HostsByComponent,
    SetPhase,
    action_command,
    dependency_order,
    phase_of,
    whole_map_plan,
)
from reconciler.model.vocabulary import WHOLE_MAP_VERBS

__all__ = [
    "DEFAULT_OUTPUT_LIMIT",
    "PHASES",
    "WHOLE_MAP_VERBS",
    "ActionOutcome",
    "ActionRunner",
    "CompletionOutcome",
    "HostOutcome",
    "HostsByComponent",
    "SetPhase",
    "Step",
    "StepStatus",
    "action_command",
    "dependency_order",
    "excerpt",
    "phase_of",
    "stream_digest",
    "whole_map_plan",
]
