"""Reconnect policy: exponential backoff with jitter, and a per-host gate that applies it.

The retry semantics live in these types rather than in loops with ``sleep``: a
:class:`ReconnectGate` is told when a connect attempt failed or succeeded and answers, for a
given instant of its injected clock, whether a new attempt may start now. Nothing here
sleeps; callers that are refused get :class:`~agentless.errors.HostUnreachable` with
``retry_after_s`` set, so tests drive the gate with a fake clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from agentless.errors import HostUnreachable

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before reconnect attempt ``n`` (n = failures so far, 1 after the first).

    ``base_s * factor**(n-1)``, capped at ``max_s``, then scaled by a random factor in
    ``[1 - jitter, 1]`` ("equal jitter" downwards) so a fleet that failed together does
    not reconnect in lockstep.
    """

    base_s: float = 1.0
    factor: float = 2.0
    max_s: float = 60.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.max_s < self.base_s or self.factor < 1:
            raise ValueError("Backoff needs 0 <= base_s <= max_s and factor >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("Backoff.jitter must be within [0, 1]")

    def delay(self, failures: int, rng: random.Random) -> float:
        if failures <= 0:
            return 0.0
        raw = min(self.max_s, self.base_s * self.factor ** (failures - 1))
        return raw * (1.0 - self.jitter * rng.random())


@dataclass(slots=True)
class ReconnectGate:
    """Connect-attempt bookkeeping for one host.

    ``generation`` increases with every finished attempt, so concurrent callers that
    queued behind one attempt can share its outcome instead of each making their own.
    """

    host: str
    backoff: Backoff
    clock: Clock
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0
    generation: int = 0
    last_reason: str | None = None
    retry_at: float = 0.0

    def check(self) -> None:
        """Raise ``HostUnreachable`` while the host is backing off; return when allowed."""
        if self.failures == 0 or self.last_reason is None:
            return
        remaining = self.retry_at - self.clock()
        if remaining > 0:
            raise HostUnreachable(
                self.host,
                f"{self.last_reason} (next attempt in {remaining:.1f}s)",
                retry_after_s=remaining,
            )

    def failed(self, reason: str) -> float:
        """Record a failed attempt; return the delay before the next one is allowed."""
        self.failures += 1
        self.generation += 1
        self.last_reason = reason
        delay = self.backoff.delay(self.failures, self.rng)
        self.retry_at = self.clock() + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.generation += 1
        self.last_reason = None
        self.retry_at = 0.0
