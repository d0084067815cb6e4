"""Run many checks at once: one probe per (check, host), bounded, never retrying dead hosts.

:func:`run_checks` fans out with a ``TaskGroup`` under a ``Semaphore``. Each
:class:`CheckTarget` gets exactly one :class:`CheckRun`, in input order:

- the probe ran → the parser's outcome;
- it outlived its timeout → UNKNOWN "timed out after Ns" (the transport killed it);
- it printed more than the transport's cap on either stream → UNKNOWN "output over N
  bytes (…)": what was kept is not the whole answer, so no parser reads it and the
  exit status is not believed either (as Nagios reads a plugin it could not read whole:
  the state is not known, which is not the same as critical);
- its host could not be reached (refused, timed out, login or host key failure) →
  UNKNOWN with that reason and ``host_unreachable=True``, never CRITICAL. A host that
  failed once is not tried again by the other checks of the same call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agentless.checks.config import CONFIG_MODELS, ProbeConfig
from agentless.checks.parsers import parse
from agentless.checks.probes import probe_command
from agentless.errors import AgentlessError, ConnectionLost, HostUnreachable
from agentless.inventory import Host
from agentless.result import CheckOutcome, CheckState, HostName
from agentless.transport import Transport

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CheckTarget:
    """One check to run on one host. ``key`` is the caller's id (e.g. map/component/check)."""

    key: str
    host: Host
    check_type: str
    config: ProbeConfig
    timeout_s: float

    def __post_init__(self) -> None:
        model = CONFIG_MODELS.get(self.check_type)
        if model is None or type(self.config) is not model:
            raise ValueError(
                f"{self.key}: config {type(self.config).__name__} does not fit check type "
                f"{self.check_type!r}"
            )


@dataclass(frozen=True, slots=True)
class CheckRun:
    """What one check did: its outcome, how long it took, when it started (epoch seconds)."""

    target: CheckTarget
    outcome: CheckOutcome
    duration_s: float
    started_at: float
    host_unreachable: bool = False


async def run_check(
    target: CheckTarget, *, transport: Transport, wall: Callable[[], float] = time.time
) -> CheckRun:
    """Run one check; every failure becomes an UNKNOWN outcome, nothing raises. Its start
    time is read from ``wall`` (epoch seconds; the caller's clock)."""
    run, _reason = await _run_check(target, transport, wall)
    return run


async def _run_check(
    target: CheckTarget, transport: Transport, wall: Callable[[], float]
) -> tuple[CheckRun, str | None]:
    """The run, and the reason its host is unreachable if it is."""
    started_at = wall()
    started = time.monotonic()
    command = probe_command(target.config, timeout_s=target.timeout_s)
    unreachable: str | None = None
    try:
        result = await transport.run(target.host, command, timeout=target.timeout_s)
    except HostUnreachable as exc:
        unreachable = exc.reason
        outcome = CheckOutcome(CheckState.UNKNOWN, f"host unreachable: {exc.reason}")
    except ConnectionLost as exc:
        unreachable = f"connection lost: {exc.reason}"
        outcome = CheckOutcome(CheckState.UNKNOWN, unreachable)
    except AgentlessError as exc:
        outcome = CheckOutcome(CheckState.UNKNOWN, str(exc))
    else:
        over = result.over_cap
        if result.timed_out:
            outcome = CheckOutcome(CheckState.UNKNOWN, f"timed out after {target.timeout_s:g}s")
        elif over is not None:
            outcome = CheckOutcome(CheckState.UNKNOWN, over)
        else:
            outcome = parse(target.config, result)
    duration = time.monotonic() - started
    run = CheckRun(target, outcome, duration, started_at, unreachable is not None)
    return run, unreachable


def _skipped(target: CheckTarget, reason: str) -> CheckRun:
    outcome = CheckOutcome(CheckState.UNKNOWN, f"host unreachable: {reason}")
    return CheckRun(target, outcome, 0.0, time.time(), host_unreachable=True)


async def run_checks(
    targets: Sequence[CheckTarget],
    *,
    transport: Transport,
    concurrency: int = 256,
    on_result: Callable[[CheckRun], None] | None = None,
) -> list[CheckRun]:
    """Run every target once, at most ``concurrency`` at a time; results in input order.

    ``on_result`` is called as each check finishes (for progress output or metrics).
    """
    slots = asyncio.Semaphore(concurrency)
    runs: list[CheckRun | None] = [None] * len(targets)
    dead: dict[HostName, str] = {}

    async def one(index: int, target: CheckTarget) -> None:
        async with slots:
            reason = dead.get(target.host.name)
            if reason is not None:
                run = _skipped(target, reason)
            else:
                run, reason = await _run_check(target, transport, time.time)
                if reason is not None:
                    dead.setdefault(target.host.name, reason)
        runs[index] = run
        if on_result is not None:
            on_result(run)

    async with asyncio.TaskGroup() as tg:
        for index, target in enumerate(targets):
            tg.create_task(one(index, target))
    done = [run for run in runs if run is not None]
    if len(done) != len(targets):
        raise AgentlessError("a check finished without a result")
    return done
