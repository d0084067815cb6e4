"""Everything around the check loop that acts or records: requests, audit, action phases.

:class:`Operations` is the reconciler's events sink and its status extras
(:mod:`reconciler.loop.events`), and runs as a task of its own, started by the service
beside the loop. It feeds new heads to the
:class:`~reconciler.requests.processor.RequestProcessor` (one request at a time, in commit
order, so a long backup never delays the checks), writes audit records for revisions and
component status changes, and delivers pending audit records as git notes in the
background, retrying while the remote is unreachable. Audit records the state database
could not store yet are stored by the same loop first, retried with backoff while the
state is not writable.

The state is called through :class:`~reconciler.store.calls.StateCalls`: on the loop for
SQLite, in a worker thread for PostgreSQL. There the audit log is deferred (an append on
the loop only keeps the record: :mod:`reconciler.audit.outbox`) and a task of this class
stores what is kept, in order, soon after each append; and what the status shows of the
journal and the outbox (the newest requests, their count, the records not delivered) is
what was last read in a thread, never read on the loop while a snapshot is built.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from reconciler.audit.errors import AuditStoreError
from reconciler.findings import Finding
from reconciler.loop.metrics import Metrics
from reconciler.loop.view import CheckView, iso
from reconciler.model.masking import Masker
from reconciler.model.runtime import DeliverySettings
from reconciler.model.status import ComponentStatus
from reconciler.repo.loader import MapRepo
from reconciler.requests.processor import Auditor, RequestProcessor
from reconciler.store.calls import IMMEDIATE, StateCalls
from reconciler.store.protocol import JournalEntry, StoreError
from reconciler.store.writes import StateWriteError

log = logging.getLogger(__name__)

SHOWN_REQUESTS = 100
"""The newest requests the status shows (their count besides)."""

DELIVERY_BATCH = 500
"""Records read and pushed at a time: a long outage leaves a backlog, read in bounded steps."""


class AuditOutbox(Auditor, Protocol):
    def pending(self, *, limit: int | None = None) -> Sequence[Any]: ...

    def pending_count(self) -> int: ...

    @property
    def unstored(self) -> int: ...

    on_kept: Callable[[], None] | None
    """A deferred log's: told on the loop of each record kept to be stored."""

    def mark_delivered(self, seqs: Sequence[int]) -> None: ...


class Publisher(Protocol):
    def publish(self, records: Sequence[Any]) -> None: ...


PublisherFactory = Callable[[str, bool], Publisher]
"""Makes the publisher for a notes ref and whether to push (from ``opsmap.yaml``)."""


class ActionPhases:
    """``starting``/``stopping`` while an action runs: set by the action runner, shown by
    the loop (its :class:`~reconciler.loop.events.PhaseSource`)."""

    def __init__(self) -> None:
        self._phases: dict[tuple[str, str], ComponentStatus] = {}
        self.on_change: Callable[[str, str, ComponentStatus | None], None] | None = None
        """Told each change (the event stream's component events)."""

    def set_phase(self, map_name: str, component: str, phase: ComponentStatus | None) -> None:
        """The action runner's callback (``None``: the action is over)."""
        if phase is None:
            self._phases.pop((map_name, component), None)
        else:
            self._phases[(map_name, component)] = phase
        if self.on_change is not None:
            self.on_change(map_name, component, phase)

    def phases(self) -> Mapping[tuple[str, str], ComponentStatus]:
        return self._phases


class RecentRequests:
    """The journal's newest requests as last read (off the loop where the store blocks):
    what the status page's requests view shows, from memory, with either store."""

    def __init__(self) -> None:
        self.entries: list[JournalEntry] = []

    def recent(self, limit: int) -> list[JournalEntry]:
        return self.entries[:limit]


class AppliedRevision:
    """The revision running now and its ``mask:`` patterns, as the request pipeline sees
    it: kept by :class:`Operations` when the loop tells it a revision is applied."""

    def __init__(self) -> None:
        self.sha: str | None = None
        self.masker = Masker()


class Operations:
    """The reconciler's events sink and status extras for requests and audit records."""

    def __init__(
        self,
        *,
        processor: RequestProcessor,
        applied: AppliedRevision,
        outbox: AuditOutbox,
        publisher_factory: PublisherFactory | None,
        metrics: Metrics,
        delivery_errors: tuple[type[Exception], ...],
        delivery: DeliverySettings | None = None,
        state: StateCalls = IMMEDIATE,
        recent: RecentRequests | None = None,
    ) -> None:
        """``state``: how the outbox and the journal are called (the processor's too);
        ``outbox`` is a deferred audit log when ``state`` blocks. ``recent`` is given the
        newest requests at each read of the journal."""
        self._delivery = delivery or DeliverySettings()
        self._state = state
        self.recent = recent or RecentRequests()
        self.processor = processor
        self.outbox = outbox
        self._make_publisher = publisher_factory
        self.publisher: Publisher | None = None
        self._publisher_settings: tuple[str, bool] | None = None
        self.metrics = metrics
        self._delivery_errors = delivery_errors
        self._applied = applied
        self._requests: list[dict[str, Any]] = []
        self._request_count = 0
        self._heads = asyncio.Event()
        self._latest_head: str | None = None
        self._deliver_now = asyncio.Event()
        self.delivery_error: str | None = None
        self._store_retry_s: float | None = None
        """Set while the outbox cannot be written: the delay before the next attempt."""
        self._idle = asyncio.Event()
        self._idle.set()
        self._kept = asyncio.Event()
        """Set when the deferred audit log kept a record: it is stored soon."""
        self._audit_pending = 0
        """Records not delivered, as last counted in a thread (a store that blocks)."""
        if state.blocks:
            outbox.on_kept = self._kept.set

    @property
    def applied(self) -> str | None:
        return self._applied.sha

    # -- events ----------------------------------------------------------------------------

    def revision_applied(self, sha: str, repo: MapRepo, *, resumed: bool) -> None:
        self._applied.sha = sha
        self._applied.masker = repo.effective_settings.masker()
        self.processor.start_from(sha)
        audit = repo.effective_settings.audit
        wanted = (audit.notes_ref, audit.push)
        if self._make_publisher is not None and wanted != self._publisher_settings:
            if self._publisher_settings is not None:
                log.info("audit: notes now under %s (push: %s)", *wanted)
            self.publisher = self._make_publisher(*wanted)
            self._publisher_settings = wanted
        if resumed:  # the same revision, running again after a restart: nothing new
            return
        self._record(
            "revision.applied",
            "opsmap",
            {"revision": sha},
            {"maps": [m.model.name for m in repo.maps]},
            sha,
        )

    def revision_rejected(self, sha: str, problems: list[Finding]) -> None:
        errors = [f"{f.location}: {f.message} [{f.code}]" for f in problems[:50]]
        self._record(
            "revision.rejected",
            "opsmap",
            {"revision": sha},
            {"errors": errors, "kept": self.applied},
            sha,
        )

    def head_seen(self, sha: str) -> None:
        self._latest_head = sha
        self._heads.set()

    def component_changed(self, map_name: str, component: str, old: str | None, new: str) -> None:
        if self.applied is None:
            return
        self._record(
            "component.status_changed",
            "opsmap",
            {"map": map_name, "component": component},
            {"from": old, "to": new},
            self.applied,
        )

    def check_changed(self, map_name: str, component: str, check: CheckView) -> None:
        """Not audited: a component's status change is (:meth:`component_changed`)."""

    def snapshot_extra(self) -> dict[str, Any]:
        waiting = self.processor.waiting
        return {
            "audit_pending": self._pending_count(),
            "audit_unstored": self.outbox.unstored,
            "audit_delivery_error": self.delivery_error,
            "requests_pending": [] if waiting is None else [dict(waiting)],
            "requests": self._requests,
            "request_count": self._request_count,
        }

    def _pending_count(self) -> int:
        """Records not delivered yet: counted now (SQLite), or as last counted off the loop
        and those kept since (a store that blocks)."""
        if self._state.blocks:
            return self._audit_pending + self.outbox.unstored
        return self.outbox.pending_count()

    async def _count_pending(self) -> None:
        """A store that blocks: count the records not delivered, in a thread."""
        if self._state.blocks:
            with contextlib.suppress(StoreError, StateWriteError, AuditStoreError):
                self._audit_pending = await self._state(None, self._stored_pending)

    def _stored_pending(self) -> int:
        return self.outbox.pending_count() - self.outbox.unstored

    async def _refresh_requests(self) -> None:
        """The newest requests for the status: a bounded read of the journal (in a thread
        when the store blocks; kept as they were when the read fails)."""
        journal = self.processor.journal
        try:
            entries = await self._state(None, journal.recent, SHOWN_REQUESTS)
            count = await self._state(None, journal.count)
        except (StoreError, StateWriteError) as exc:
            log.debug("requests: the journal not read this time: %s", exc)
            return
        self.recent.entries = entries
        self._requests = [request_view(e) for e in entries]
        self._request_count = count

    # -- background ------------------------------------------------------------------------

    async def run(self) -> None:
        await self.processor.recover()
        await self._refresh_requests()
        await self._count_pending()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._process_requests(), name="requests")
            group.create_task(self._deliver_audit(), name="audit delivery")
            if self._state.blocks:
                group.create_task(self._store_audit(), name="audit store")

    async def _process_requests(self) -> None:
        while True:
            await self._heads.wait()
            self._heads.clear()
            head = self._latest_head
            if head is not None and not self.processor.stop_requested:
                self._idle.clear()
                try:
                    await self.processor.process(head)
                    await self._refresh_requests()
                finally:
                    self._idle.set()
                self._wake_delivery()

    async def wait_idle(self, *, grace_s: float) -> None:
        """A clean stop: no further request starts, and a running action has up to
        ``grace_s`` to finish, so that its real outcome is recorded. Past that, the stop
        cancels it and the processor records it ``unknown`` at once (the command may go on
        on its hosts); it is never run again."""
        self.processor.stop_requested = True
        if self._idle.is_set():
            return
        log.info("stopping: waiting up to %gs for the running request to finish", grace_s)
        try:
            async with asyncio.timeout(grace_s):
                await self._idle.wait()
        except TimeoutError:
            log.warning("stopping: the running request did not finish within %gs", grace_s)

    async def _store_audit(self) -> None:
        """A deferred audit log: what it keeps is stored in a thread soon after each append,
        in order; retried with the state's backoff while it cannot be written (then
        delivery waits for it too)."""
        while True:
            await self._kept.wait()
            self._kept.clear()
            try:
                await self._state("audit", self.outbox.flush)
            except StateWriteError as exc:
                self._store_retry_s = exc.delay
                await asyncio.sleep(exc.delay)
                self._kept.set()
                continue
            self._store_retry_s = None
            await self._count_pending()
            self._wake_delivery()

    async def _deliver_audit(self) -> None:
        delay = self._delivery.interval_s
        while True:
            try:
                async with asyncio.timeout(delay):
                    await self._deliver_now.wait()
            except TimeoutError:
                pass
            self._deliver_now.clear()
            delay = (
                self._delivery.interval_s
                if await self.deliver()
                else min(delay * 2, self._delivery.retry_max_s)
            )
            if self._store_retry_s is not None:  # the state's own backoff, not the remote's
                delay = self._store_retry_s

    async def deliver(self) -> bool:
        """Push pending records as git notes; False (and kept pending) if the remote failed.

        At most :data:`DELIVERY_BATCH` records at a time; when more are pending, delivery
        goes on at once. The outbox is read through ``state`` (a bounded read of one
        indexed table). The push runs in a thread, under the git runner's timeouts. Records
        not stored yet are stored first; False while the state cannot be written.
        """
        pending = functools.partial(self.outbox.pending, limit=DELIVERY_BATCH)
        try:
            await self._state("audit", self.outbox.flush)
            records = list(await self._state("audit", pending))
        except StateWriteError as exc:
            self._store_retry_s = exc.delay
            return False
        self._store_retry_s = None
        if not records or self.publisher is None:
            await self._count_pending()
            return True
        try:
            await asyncio.to_thread(self.publisher.publish, records)
        except self._delivery_errors as exc:
            if self.delivery_error != str(exc):
                log.warning("audit: %d record(s) not delivered yet: %s", len(records), exc)
            self.delivery_error = str(exc)
            return False
        try:
            await self._state("audit", self.outbox.mark_delivered, [r.seq for r in records])
        except StateWriteError as exc:  # pushed, but still pending: pushed again (once by id)
            self._store_retry_s = exc.delay
            return False
        await self._count_pending()
        if self.delivery_error is not None:
            log.info("audit: delivered again; %d record(s) pushed", len(records))
        self.delivery_error = None
        if len(records) == DELIVERY_BATCH:
            self._deliver_now.set()
        return True

    def _record(
        self, action: str, actor: str, target: dict[str, Any], details: dict[str, Any], commit: str
    ) -> None:
        # SQLite: on the loop, one row read and one row written (WAL, synchronous=NORMAL:
        # no fsync per commit), so cheap and bounded, and durable before anything else
        # happens. When the state cannot be written, the outbox keeps it and delivery
        # stores it later. A store that blocks: kept in order, stored by _store_audit.
        self.outbox.append(
            action=action,
            actor=actor,
            target=target,
            details=details,
            commit=commit,
            revision=self.applied,
        )
        self._wake_delivery()

    def _wake_delivery(self) -> None:
        """Deliver soon, unless the remote or the state is failing: then backoff decides."""
        if self._store_retry_s is not None:
            return
        if self.delivery_error is None and self._pending_count():
            self._deliver_now.set()


class MetricCounters:
    """The request processor's counters, on the reconciler's metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def request(self, result: str) -> None:
        self._metrics.requests_total.labels(result).inc()

    def action(self, map_name: str, component: str, action: str, result: str) -> None:
        self._metrics.actions_total.labels(map_name, component, action, result).inc()


def request_view(entry: JournalEntry) -> dict[str, Any]:
    """One request as the status shows it: who asked and approved, and whether that is verified.

    ``verified`` comes from the journal's identity column (the request's
    :class:`~reconciler.git.attribution.Attribution`): true only when every identity is a
    verified signature; a row without it (written before identities were kept) is
    unverified. Unverified, ``requester`` and ``approver`` are what the commits claim.

    ``state`` is ``running``, ``succeeded``, ``failed``, ``unknown`` (sent, outcome not
    known: never read it as failed) or ``denied``; ``hosts`` is each host's result when
    known.
    """
    identity = entry.identity if isinstance(entry.identity, dict) else {}
    outcome = entry.outcome or {}
    results = outcome.get("results")

    def person_verified(role: str) -> bool:
        person = identity.get(role)
        return isinstance(person, dict) and person.get("verified") is True

    return {
        "path": entry.path,
        "commit": entry.commit,
        "state": entry.state,
        "rule": entry.rule,
        "requester": entry.requester,
        "requester_verified": person_verified("requester"),
        "approver": entry.approver,
        "approver_verified": person_verified("approver"),
        "verified": identity.get("verified") is True,
        "reason": outcome.get("reason") if entry.state != "denied" else entry.rule,
        "hosts": results if isinstance(results, dict) else None,
        "created_at": iso(entry.created_at),
        "finished_at": iso(entry.finished_at),
    }
