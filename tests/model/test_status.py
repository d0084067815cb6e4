"""Component status is the worst hard state; impact follows declared dependencies."""

from __future__ import annotations

import itertools

from agentless.result import CheckState
from reconciler.model.depgraph import Impact
from reconciler.model.status import ComponentStatus, component_status, impacts

S = ComponentStatus


def test_worst_state_wins_and_critical_is_error() -> None:
    states = [CheckState.OK, CheckState.WARNING, CheckState.CRITICAL, CheckState.UNKNOWN]
    assert component_status(states) is S.ERROR
    assert component_status([CheckState.OK, CheckState.UNKNOWN]) is S.UNKNOWN
    assert component_status([CheckState.OK, CheckState.WARNING]) is S.WARNING
    assert component_status([CheckState.OK, CheckState.OK]) is S.OK


def test_pending_or_no_checks_is_unknown() -> None:
    assert component_status([CheckState.OK, None]) is S.UNKNOWN
    assert component_status([]) is S.UNKNOWN


def test_a_running_action_shows_instead() -> None:
    assert component_status([CheckState.CRITICAL], action=S.STARTING) is S.STARTING


def test_impact_lists_failing_dependencies_near_and_far_but_not_external() -> None:
    deps = {"api": ["db", "cache", "zookeeper"], "db": ["disk"], "cache": [], "disk": []}
    statuses = {"api": S.OK, "db": S.WARNING, "cache": S.UNKNOWN, "disk": S.ERROR}
    found = impacts(deps, statuses)
    assert found["api"] == Impact(("cache", "disk"))
    assert found["db"] == Impact(("disk",))
    assert found["disk"] == Impact()
    assert not found["disk"]


def test_impact_survives_cycles() -> None:
    deps = {"a": ["b"], "b": ["a"]}
    found = impacts(deps, {"a": S.ERROR, "b": S.ERROR})
    assert found["a"].causes == ("b",)
    assert found["b"].causes == ("a",)


def test_the_worst_state_wins_in_any_order_and_amount() -> None:
    worst = {S.ERROR: 3, S.UNKNOWN: 2, S.WARNING: 1, S.OK: 0}
    status_of = {
        CheckState.OK: S.OK,
        CheckState.WARNING: S.WARNING,
        CheckState.CRITICAL: S.ERROR,
        CheckState.UNKNOWN: S.UNKNOWN,
        None: S.UNKNOWN,
    }
    states = list(status_of)
    for n in range(1, 4):
        for combo in itertools.product(states, repeat=n):
            expected = max((status_of[s] for s in combo), key=worst.__getitem__)
            assert component_status(combo) is expected, combo
