"""The life of one check on one host: soft and hard states, retries, flapping.

Nagios semantics: a failing result first makes a SOFT state, retried at the faster
``retry_interval`` until ``max_check_attempts`` results agree, when it becomes HARD.
Recovery to OK is immediate. A check that has never reached a hard state is PENDING.
Flapping is detected from the weighted percentage of state changes over the last 21
results, with hysteresis (start above ``high``, stop below ``low``).
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from agentless.result import CheckOutcome, CheckState

FLAP_WINDOW = 21


class StateType(enum.Enum):
    SOFT = "soft"
    HARD = "hard"


@dataclass(frozen=True, slots=True)
class CheckPolicy:
    """How a check is retried and judged; from the map and the repo's defaults."""

    interval_s: float
    retry_interval_s: float
    max_attempts: int = 3
    flap_low_percent: float = 20.0
    flap_high_percent: float = 30.0


@dataclass
class CheckStatus:
    """Everything OpsMap remembers about one check on one host."""

    state: CheckState | None = None
    state_type: StateType = StateType.HARD
    hard_state: CheckState | None = None
    attempt: int = 0
    message: str = "not run yet"
    value: float | None = None
    last_run: float | None = None
    last_duration_s: float | None = None
    last_hard_change: float | None = None
    flapping: bool = False
    history: deque[int] = field(default_factory=lambda: deque(maxlen=FLAP_WINDOW))

    @property
    def pending(self) -> bool:
        return self.hard_state is None

    def record(
        self, outcome: CheckOutcome, *, at: float, duration_s: float, policy: CheckPolicy
    ) -> bool:
        """Take in one result; return True when the hard state changed."""
        previous_hard = self.hard_state
        new = outcome.state
        if new is CheckState.OK:
            self.state_type, self.attempt, self.hard_state = StateType.HARD, 1, new
        elif self.state_type is StateType.HARD and self.hard_state not in (None, CheckState.OK):
            self.hard_state, self.attempt = new, policy.max_attempts  # hard problem changes at once
        else:
            self.attempt = self.attempt + 1 if self.state not in (None, CheckState.OK) else 1
            if self.attempt >= policy.max_attempts:
                self.state_type, self.hard_state = StateType.HARD, new
            else:
                self.state_type = StateType.SOFT
        self.state = new
        self.message, self.value = outcome.message, outcome.value
        self.last_run, self.last_duration_s = at, duration_s
        self.history.append(new.value)
        self._update_flapping(policy)
        changed = self.hard_state is not previous_hard
        if changed:
            self.last_hard_change = at
        return changed

    def next_delay(self, policy: CheckPolicy) -> float:
        """Seconds until the next run: faster while a problem is still soft."""
        if self.state_type is StateType.SOFT:
            return policy.retry_interval_s
        return policy.interval_s

    def _update_flapping(self, policy: CheckPolicy) -> None:
        change = flap_percent(list(self.history))
        if self.flapping and change < policy.flap_low_percent:
            self.flapping = False
        elif not self.flapping and change > policy.flap_high_percent:
            self.flapping = True


def flap_percent(states: list[int]) -> float:
    """Weighted percent of state changes (recent changes weigh 1.25, the oldest 0.75)."""
    if len(states) < 2:
        return 0.0
    transitions = len(states) - 1
    total = 0.0
    for i in range(1, len(states)):
        if states[i] != states[i - 1]:
            total += 0.75 + 0.5 * (i - 1) / max(transitions - 1, 1)
    return 100.0 * total / transitions
