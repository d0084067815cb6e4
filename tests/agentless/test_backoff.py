"""Reconnect backoff and the per-host gate, on a fake clock: nothing sleeps."""

from __future__ import annotations

import random

import pytest

from agentless.backoff import Backoff, ReconnectGate
from agentless.errors import HostUnreachable


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_delay_grows_exponentially_and_is_capped_without_jitter() -> None:
    backoff = Backoff(base_s=1, factor=2, max_s=10, jitter=0)
    rng = random.Random(1)
    assert [backoff.delay(n, rng) for n in range(7)] == [0, 1, 2, 4, 8, 10, 10]


def test_jitter_stays_within_its_band() -> None:
    backoff = Backoff(base_s=4, factor=2, max_s=60, jitter=0.5)
    rng = random.Random(7)
    delays = [backoff.delay(1, rng) for _ in range(200)]
    assert all(2.0 <= d <= 4.0 for d in delays)
    assert len(set(delays)) > 100  # hosts that failed together spread out


@pytest.mark.parametrize(
    "kwargs", [{"base_s": -1}, {"base_s": 5, "max_s": 1}, {"factor": 0.5}, {"jitter": 1.5}]
)
def test_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Backoff"):
        Backoff(**kwargs)


def test_gate_refuses_during_backoff_and_reopens_after() -> None:
    clock = FakeClock()
    gate = ReconnectGate("web1", Backoff(base_s=2, factor=3, max_s=100, jitter=0), clock)
    gate.check()  # a fresh host may be tried
    assert gate.failed("connection refused") == 2
    with pytest.raises(HostUnreachable, match="connection refused") as refused:
        gate.check()
    assert refused.value.retry_after_s == pytest.approx(2)
    clock.now += 1.5
    with pytest.raises(HostUnreachable) as later:
        gate.check()
    assert later.value.retry_after_s == pytest.approx(0.5)
    clock.now += 0.5
    gate.check()  # allowed again
    assert gate.failed("connection refused") == 6  # second failure: 2 * 3
    clock.now += 6
    gate.check()
    gate.succeeded()
    assert gate.failures == 0
    assert gate.failed("timed out") == 2  # success resets the sequence


def test_gate_generation_counts_attempts() -> None:
    gate = ReconnectGate("web1", Backoff(), FakeClock())
    before = gate.generation
    gate.failed("x")
    gate.succeeded()
    assert gate.generation == before + 2
