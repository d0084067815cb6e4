"""The check statuses as the state store keeps them: one row per check and host, times as
wall-clock epochs (the scheduler works on a monotonic clock, so the offset between the two
is given when they are loaded or saved). The store itself is
:class:`reconciler.store.protocol.StateStore`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

from agentless.result import CheckState
from reconciler.inert import for_log
from reconciler.logcontext import context
from reconciler.loop.checkstate import FLAP_WINDOW, CheckStatus, StateType
from reconciler.loop.scheduler import CheckKey
from reconciler.store.protocol import CheckId, CheckRow, StateStore, StoreError
from reconciler.store.writes import StateWrites

log = logging.getLogger(__name__)

LOGGED_REFUSALS = 10
"""Refused rows named in the log per save (a database that refuses them all is one error)."""


def load_checks(store: StateStore, *, wall_offset: float) -> dict[CheckKey, CheckStatus]:
    """Every remembered check status, with times moved to the monotonic clock."""
    return statuses_from_rows(store.load_check_rows(), wall_offset=wall_offset)


def statuses_from_rows(
    rows: Iterable[CheckRow], *, wall_offset: float
) -> dict[CheckKey, CheckStatus]:
    """The statuses that stored ``rows`` hold, with times on the monotonic clock."""

    def mono(wall: float | None) -> float | None:
        return None if wall is None else wall - wall_offset

    statuses = {}
    for row in rows:
        key = CheckKey(*row[:4])
        state, state_type, hard, attempt, message, value, last_run, duration, change = row[4:13]
        statuses[key] = CheckStatus(
            state=None if state is None else CheckState(state),
            state_type=StateType(state_type),
            hard_state=None if hard is None else CheckState(hard),
            attempt=attempt,
            message=message,
            value=value,
            last_run=mono(last_run),
            last_duration_s=duration,
            last_hard_change=mono(change),
            flapping=bool(row[13]),
            history=deque(row[14], maxlen=FLAP_WINDOW),
        )
    return statuses


def reachable_from_rows(rows: Iterable[CheckRow]) -> dict[str, bool]:
    """Whether each host of ``rows`` was reached: as its most recent run found it (a row
    that never ran says nothing)."""
    newest: dict[str, tuple[float, bool]] = {}
    for row in rows:
        host, last_run = str(row[3]), row[10]
        if last_run is None:
            continue
        seen = newest.get(host)
        if seen is None or float(last_run) > seen[0]:
            newest[host] = (float(last_run), bool(row[15]))
    return {host: reached for host, (_, reached) in newest.items()}


def check_rows(
    statuses: Mapping[CheckKey, CheckStatus],
    *,
    wall_offset: float,
    reachable: Mapping[str, bool] | None = None,
) -> list[CheckRow]:
    """The rows of ``statuses``: a copy that the loop may go on changing statuses after.
    ``reachable``: whether each host was reached on its last run (default: it was)."""
    reached = reachable or {}

    def wall(mono: float | None) -> float | None:
        return None if mono is None else mono + wall_offset

    return [
        (
            *key,
            None if s.state is None else s.state.value,
            s.state_type.value,
            None if s.hard_state is None else s.hard_state.value,
            s.attempt,
            s.message,
            s.value,
            wall(s.last_run),
            s.last_duration_s,
            wall(s.last_hard_change),
            int(s.flapping),
            list(s.history),
            int(reached.get(key.host, True)),
        )
        for key, s in statuses.items()
    ]


def save_check_rows(
    store: StateStore, rows: Sequence[CheckRow], *, removed: Sequence[CheckId]
) -> list[tuple[CheckRow, str]]:
    """Store ``rows`` and remove ``removed`` (:meth:`StateStore.update_check_rows`); the
    rows the store refused, and why. A row it cannot take (a :class:`StoreError`: a value
    it does not hold) fails alone: the batch is halved until the bad rows are found, so
    the others are stored (k bad rows of n cost k·log n writes, and only when one fails).
    :class:`~reconciler.store.writes.StateWriteError` as the store raises it (retry)."""
    try:
        store.update_check_rows(rows, removed=removed)
        return []
    except StoreError as exc:
        if len(rows) == 1 and not removed:
            return [(rows[0], str(exc))]
        failed = str(exc)
    refused: list[tuple[CheckRow, str]] = []
    if removed:
        try:
            store.update_check_rows([], removed=removed)
        except StoreError as exc:
            log.error("check states: removed checks not removed: %s", for_log(exc))
    if not rows:
        return refused
    if len(rows) == 1:
        return [(rows[0], failed)]
    half = len(rows) // 2
    refused += save_check_rows(store, rows[:half], removed=())
    refused += save_check_rows(store, rows[half:], removed=())
    return refused


def refused(rows: Sequence[tuple[CheckRow, str]], writes: StateWrites) -> None:
    """Report the rows the store refused (:func:`save_check_rows`): each that check's
    error alone (logged, the first :data:`LOGGED_REFUSALS` of a save by name; counted as
    a failed write of ``checks``); saved again when the check next changes."""
    for row, reason in rows[:LOGGED_REFUSALS]:
        key = CheckKey(*row[:4])
        about = context(map=key.map, component=key.component, check=key.check, host=key.host)
        log.error("check state not saved: %s", for_log(reason), extra=about)
    if len(rows) > LOGGED_REFUSALS:
        log.error("check states not saved: %d more", len(rows) - LOGGED_REFUSALS)
    for _ in rows:
        if writes.on_failure is not None:
            writes.on_failure("checks")
