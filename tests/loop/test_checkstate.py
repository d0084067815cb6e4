"""Soft and hard states, retries and flapping, as Nagios defines them."""

from __future__ import annotations

import pytest

from agentless.result import CheckOutcome, CheckState
from reconciler.loop.checkstate import CheckPolicy, CheckStatus, StateType, flap_percent

POLICY = CheckPolicy(interval_s=60, retry_interval_s=10, max_attempts=3)
OK, WARN, CRIT, UNK = CheckState.OK, CheckState.WARNING, CheckState.CRITICAL, CheckState.UNKNOWN


def feed(status: CheckStatus, *states: CheckState, policy: CheckPolicy = POLICY) -> list[bool]:
    return [
        status.record(CheckOutcome(s, s.name.lower()), at=float(i), duration_s=0.1, policy=policy)
        for i, s in enumerate(states)
    ]


def test_a_new_check_is_pending_until_its_first_hard_state() -> None:
    status = CheckStatus()
    assert status.pending
    feed(status, CRIT)
    assert status.pending
    assert status.state is CRIT
    assert status.state_type is StateType.SOFT
    assert status.attempt == 1


def test_a_problem_becomes_hard_after_max_attempts_and_retries_faster_meanwhile() -> None:
    status = CheckStatus()
    feed(status, OK)
    assert status.hard_state is OK
    changes = feed(status, CRIT, CRIT)
    assert changes == [False, False]
    assert status.state_type is StateType.SOFT
    assert status.next_delay(POLICY) == POLICY.retry_interval_s
    assert feed(status, CRIT) == [True]
    assert status.hard_state is CRIT
    assert status.state_type is StateType.HARD
    assert status.next_delay(POLICY) == POLICY.interval_s


def test_recovery_is_immediate_and_resets_attempts() -> None:
    status = CheckStatus()
    feed(status, CRIT, CRIT, CRIT)
    assert status.hard_state is CRIT
    assert feed(status, OK) == [True]
    assert status.hard_state is OK
    assert status.attempt == 1


def test_a_soft_problem_that_clears_never_reaches_hard() -> None:
    status = CheckStatus()
    feed(status, OK, CRIT, CRIT, OK, CRIT)
    assert status.hard_state is OK
    assert status.attempt == 1
    assert status.state_type is StateType.SOFT


def test_a_hard_problem_changes_severity_at_once() -> None:
    status = CheckStatus()
    feed(status, WARN, WARN, WARN)
    assert status.hard_state is WARN
    assert feed(status, CRIT) == [True]
    assert status.hard_state is CRIT


def test_max_attempts_of_one_makes_every_result_hard() -> None:
    status = CheckStatus()
    feed(status, UNK, policy=CheckPolicy(60, 10, max_attempts=1))
    assert status.hard_state is UNK


def test_flapping_starts_above_high_and_stops_below_low() -> None:
    status = CheckStatus()
    feed(status, *([OK, CRIT] * 6))
    assert status.flapping
    feed(status, *([OK] * 21))
    assert not status.flapping


@pytest.mark.parametrize(
    ("states", "expected"),
    [([0] * 21, 0.0), ([0, 2] * 10 + [0], 100.0), ([0], 0.0), ([], 0.0)],
)
def test_flap_percent(states: list[int], expected: float) -> None:
    assert flap_percent(states) == pytest.approx(expected)


def test_flap_percent_weighs_recent_changes_more() -> None:
    old_change = [0, 2] + [2] * 19
    new_change = [0] * 20 + [2]
    assert flap_percent(new_change) > flap_percent(old_change)
