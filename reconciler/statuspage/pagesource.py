"""What the status page reads from the running service (:class:`PageSource`), and who reads it.

The service implements :class:`PageSource` (see ``reconciler/server/service.py``); every
call is made on the event loop's thread, from a request handler, and must be quick and
bounded. The page changes nothing.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.audit.outbox import AuditLog
from reconciler.audit.record import AuditRecord
from reconciler.clock import Clock
from reconciler.loop.view import Snapshot
from reconciler.loop.viewers import Target
from reconciler.model.vocabulary import ALL_COMPONENTS
from reconciler.policy.visibility import Visibility
from reconciler.repo.loader import MapRepo
from reconciler.store.protocol import JournalEntry, Outbox

HISTORY_LIMIT = 2000
"""Audit records kept in memory for the component view's history (the newest)."""
TARGETS_KEPT = 4096
"""Requests whose target (map, component) is kept, the newest: more than are shown."""


class Viewer(Protocol):
    """Who asks (``request["viewer"]``, set by the server's identity middleware).

    ``trusted``: identities are enforced; then ``user`` is the person the trusted header
    names, or None (who sees nothing). Untrusted, everyone sees everything.
    """

    @property
    def user(self) -> str | None: ...

    @property
    def trusted(self) -> bool: ...


class PageSource(Protocol):
    """The service as the page sees it (on the event loop's thread)."""

    def snapshot(self) -> Snapshot:
        """The loop's typed snapshot, now."""
        ...

    def repo(self) -> MapRepo | None:
        """The applied revision's repo (None before the first one)."""
        ...

    def branch(self) -> str:
        """The branch the service follows (a request's pull request targets it)."""
        ...

    def visibility(self) -> Visibility:
        """Who may view what at the applied revision (no one, before the first one)."""
        ...

    def history(self) -> Sequence[HistoryItem]:
        """Recent audit records, oldest first, at most :data:`HISTORY_LIMIT`."""
        ...

    def recent_requests(self, limit: int) -> Sequence[JournalEntry]:
        """The ``limit`` newest requests of the journal, newest first."""
        ...

    def request_target(self, path: str) -> Target | None:
        """What the request ``path`` targets (:meth:`AuditHistory.target`)."""
        ...


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One audit record as the page shows it."""

    timestamp: str
    action: str
    actor: str
    commit: str
    map: str | None
    component: str | None
    request: str | None
    requested: str | None
    """The action a request record names (its target's ``action``)."""
    summary: str
    details: dict[str, Any]

    @classmethod
    def of(cls, record: AuditRecord) -> HistoryItem:
        target, details = record.target, record.details
        return cls(
            timestamp=record.timestamp,
            action=record.action,
            actor=record.actor,
            commit=record.commit,
            map=_text(target.get("map")),
            component=_text(target.get("component")),
            request=_text(target.get("request")),
            requested=_text(target.get("action")),
            summary=_summary(record.action, details),
            details=details,
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _summary(action: str, details: dict[str, Any]) -> str:
    if action == "component.status_changed":
        return f"{details.get('from') or 'none'} → {details.get('to')}"
    if action in ("request.authorized", "request.denied"):
        return f"{details.get('decision', '')}: {details.get('rule', '')}"
    if action.startswith("action."):
        reason = details.get("reason")
        return action.removeprefix("action.") + (f": {reason}" if isinstance(reason, str) else "")
    if action == "revision.rejected":
        return f"{len(details.get('errors') or [])} error(s)"
    return action


class AuditHistory:
    """The newest audit records, in memory: the component view's recent history, and what
    the newest requests target (a viewer limited by the policies sees a request only when
    it may see its target: the journal does not hold it).

    Fed on the loop, or from the thread that stores a blocking store's records; read from
    the loop and from the encoding threads (one dictionary lookup at a time)."""

    def __init__(self, limit: int = HISTORY_LIMIT, *, targets: int = TARGETS_KEPT) -> None:
        self._items: deque[HistoryItem] = deque(maxlen=limit)
        self._targets: dict[str, Target] = {}
        self._targets_kept = targets
        self._writing = threading.Lock()
        """Held by :meth:`add` (the loop's or a store's thread); readers only look up."""

    def add(self, record: AuditRecord) -> None:
        item = HistoryItem.of(record)
        self._items.append(item)
        if item.request is None or item.map is None:
            return
        target = Target(item.map, item.component or ALL_COMPONENTS, item.requested)
        with self._writing:
            targets = self._targets
            targets.pop(item.request, None)  # the newest last: the oldest is forgotten first
            targets[item.request] = target
            if len(targets) > self._targets_kept:
                del targets[next(iter(targets))]

    def items(self) -> Sequence[HistoryItem]:
        return tuple(self._items)

    def target(self, path: str) -> Target | None:
        """The map, component (``*``: the whole map) and action the request file ``path``
        names, from its audit records since the service started; None when none named a
        map."""
        return self._targets.get(path)


class RecordedAuditLog(AuditLog):
    """The audit log that also keeps each record it stores in an :class:`AuditHistory`.

    A record that the database could not store at once reaches the history when it is
    stored (:meth:`flush` or a later :meth:`append`).
    """

    def __init__(
        self, outbox: Outbox, *, history: AuditHistory, clock: Clock | None = None
    ) -> None:
        super().__init__(outbox, clock=clock)
        self.history = history

    def _store_one(self, entry: Any) -> AuditRecord:
        record = super()._store_one(entry)
        self.history.add(record)
        return record


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
