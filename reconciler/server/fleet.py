"""Replicas of ``opsmap run`` on one PostgreSQL database (``--replica NAME``).

Every replica follows the map repo, applies its revisions and serves the whole fleet's
status; beyond that, :class:`Fleet` decides from each heartbeat
(:meth:`reconciler.store.postgres.replicas.Replicas.heartbeat`) what this one does:

- **the leader** (the replica holding the lease) runs :class:`Operations`: the request
  processor and the audit delivery. A fresh one per term, reading the cursor and the chain
  from the database, so a new leader goes on where the last one stopped: its first step
  marks the requests left ``running`` ``unknown`` (once: the journal's recovery is one
  fenced transaction), never re-running them. A leader that loses the lease (its own
  clock says so, before the database would give it away) starts nothing more: a running
  action has one lease period to finish, then it is cancelled; any write of its outcome
  is fenced anyway;
- **every replica** checks the hosts that rendezvous hashing gives it over the live
  replicas (:meth:`Reconciler.place`), writes only their rows, and takes in the other
  replicas' rows on each heartbeat (:meth:`Reconciler.observe`: their statuses, and
  whether each of their hosts was reached on its last run), so its status, metrics and
  page show the whole fleet, and which replica checks what.

Every call of the database (heartbeats, the fleet's rows, the cursor, a follower's view of
the requests) is made in a worker thread (:class:`~reconciler.store.calls.StateCalls`),
the loop awaiting it under a timeout: a database that hangs is a failed heartbeat.

While the database cannot be reached, heartbeats fail: the failure is logged once, counted
(``opsmap_state_write_errors_total{what="lease"}``) and shown on ``/healthz``; the lease
runs out, so no replica starts a request; each replica keeps checking the hosts it had.
When the database is back, the next heartbeat takes or renews the lease and all goes on.

:class:`LeaderGate` is the loop's events sink and status extras: it hands events to the
leader's :class:`Operations` and drops them on a follower (the leader records the audit
trail, one chain), and shows a follower the requests as the database has them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler.findings import Finding
from reconciler.loop.checkstate import CheckStatus
from reconciler.loop.placement import Placement
from reconciler.loop.reconciler import Reconciler
from reconciler.loop.rows import reachable_from_rows, statuses_from_rows
from reconciler.loop.scheduler import CheckKey
from reconciler.loop.view import CheckView
from reconciler.repo.loader import MapRepo
from reconciler.requests.processor import CURSOR_KEY
from reconciler.server.operations import (
    SHOWN_REQUESTS,
    Operations,
    RecentRequests,
    request_view,
)
from reconciler.store.calls import StateCalls
from reconciler.store.protocol import JournalEntry, StoreError
from reconciler.store.writes import StateWriteError

if TYPE_CHECKING:
    from reconciler.store.postgres import PostgresStore
    from reconciler.store.postgres.replicas import Replicas, Standing

log = logging.getLogger(__name__)

WATCH_S = 0.25
"""How often the lease is looked at on this replica's own clock (no database call)."""
LEADER_WRITES = ("journal", "audit", "cursor")
"""What only the leader writes: a replica that stops leading stops failing at them."""


class LeaderGate:
    """The loop's events and status extras: the leader's :class:`Operations`, or nothing."""

    def __init__(self) -> None:
        self.operations: Operations | None = None
        self._applied: tuple[str, MapRepo] | None = None
        self._head: str | None = None
        self.follower_extra: dict[str, Any] = {
            "audit_pending": 0,
            "audit_unstored": 0,
            "audit_delivery_error": None,
            "requests_pending": [],
            "requests": [],
            "request_count": 0,
        }
        """What a follower shows of requests and audit: the database's, at the last beat."""

    def lead(self, operations: Operations) -> None:
        """``operations`` act from now on, given the revision and head the loop has."""
        self.operations = operations
        if self._applied is not None:
            operations.revision_applied(*self._applied, resumed=True)
        if self._head is not None:
            operations.head_seen(self._head)

    def follow(self) -> None:
        self.operations = None

    def revision_applied(self, sha: str, repo: MapRepo, *, resumed: bool) -> None:
        self._applied = (sha, repo)
        if self.operations is not None:
            self.operations.revision_applied(sha, repo, resumed=resumed)

    def revision_rejected(self, sha: str, problems: list[Finding]) -> None:
        if self.operations is not None:
            self.operations.revision_rejected(sha, problems)

    def head_seen(self, sha: str) -> None:
        self._head = sha
        if self.operations is not None:
            self.operations.head_seen(sha)

    def component_changed(self, map_name: str, component: str, old: str | None, new: str) -> None:
        if self.operations is not None:
            self.operations.component_changed(map_name, component, old, new)

    def check_changed(self, map_name: str, component: str, check: CheckView) -> None:
        if self.operations is not None:
            self.operations.check_changed(map_name, component, check)

    def snapshot_extra(self) -> dict[str, Any]:
        if self.operations is not None:
            return self.operations.snapshot_extra()
        return dict(self.follower_extra)

    async def wait_idle(self, *, grace_s: float) -> None:
        if self.operations is not None:
            await self.operations.wait_idle(grace_s=grace_s)


class Fleet:
    """This replica's heartbeats, and what it does as leader or follower (module docstring)."""

    def __init__(
        self,
        *,
        store: PostgresStore,
        replicas: Replicas,
        reconciler: Reconciler,
        gate: LeaderGate,
        make_operations: Callable[[str | None], Operations],
        state: StateCalls | None = None,
        recent: RecentRequests | None = None,
    ) -> None:
        """``state``: how the database is called (the store's, by default); ``recent`` is
        given a follower's newest requests at each beat (the status page's)."""
        self._store = store
        self._state = state or StateCalls.of(store)
        self._recent = recent or RecentRequests()
        self._replicas = replicas
        self._reconciler = reconciler
        self._gate = gate
        self._make_operations = make_operations
        self.heartbeat_s = replicas.lease_s / 3
        self.stopping = False
        """Set on a clean stop: this replica takes the lead no more."""
        self._leading: asyncio.Task[None] | None = None
        self._lost_db = False

    async def first_placement(self) -> Placement:
        """The first heartbeat's placement, before any check runs (StateWriteError if the
        database fails)."""
        standing = await self._state("lease", self._replicas.heartbeat)
        log.info("replica %s joins: live replicas %s; leader %s", standing.replica,
                 ", ".join(standing.live), standing.leader_id or "none")  # fmt: skip
        return Placement(standing.replica, standing.live, standing.leader_id)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            beat: asyncio.Task[_Beat | None] | None = None
            next_beat = 0.0
            loop = asyncio.get_running_loop()
            while True:
                if beat is None and loop.time() >= next_beat:
                    following = self._gate.operations is None
                    beat = group.create_task(self._beat(following=following), name="heartbeat")
                    next_beat = loop.time() + self.heartbeat_s
                if beat is not None and beat.done():
                    found, beat = beat.result(), None
                    if found is not None:
                        self._took_in(found)
                await self._lead_or_follow(group)
                await asyncio.sleep(WATCH_S)

    async def _beat(self, *, following: bool) -> _Beat | None:
        """One heartbeat and a read of the fleet's rows, in a thread (the loop never waits
        on the database); None if the database failed or did not answer in time (the store
        logged it, counts it and /healthz shows it)."""
        try:
            standing = await self._state("lease", self._replicas.heartbeat)
        except (StateWriteError, StoreError) as exc:
            if not self._lost_db:
                log.error("replica %s: the state database is unreachable (%s): no request "
                          "starts until it is back", self._replicas.id, exc)  # fmt: skip
            self._lost_db = True
            return None
        if self._lost_db:
            log.warning("replica %s: the state database is back", self._replicas.id)
        self._lost_db = False
        try:
            rows, reachable = await self._state(None, self._stored_statuses)
            extra = await self._state(None, self._follower_extra) if following else None
        except (StoreError, StateWriteError) as exc:
            log.debug("replica %s: the fleet's state not read this time: %s", standing.replica, exc)
            return _Beat(standing, None, {}, None)
        return _Beat(standing, rows, reachable, extra)

    def _took_in(self, found: _Beat) -> None:
        """Which hosts are this replica's now, and what the others stored of theirs."""
        standing = found.standing
        previous = self._reconciler.placement
        placement = Placement(standing.replica, standing.live, standing.leader_id)
        if previous is None or previous.live != placement.live:
            log.info("replica %s: live replicas %s; leader %s", standing.replica,
                     ", ".join(standing.live), standing.leader_id or "none")  # fmt: skip
        self._reconciler.place(placement)
        if found.rows is not None:
            self._reconciler.observe(found.rows, reachable=found.reachable)
        if found.extra is not None and self._gate.operations is None:
            self._gate.follower_extra, self._recent.entries = found.extra

    def _stored_statuses(self) -> tuple[dict[CheckKey, CheckStatus], dict[str, bool]]:
        """Every stored check status, and whether each host was reached on its last run
        (in a thread: the loop only takes the others')."""
        rows = self._store.load_check_rows()
        statuses = statuses_from_rows(rows, wall_offset=self._reconciler.wall_offset)
        return statuses, reachable_from_rows(rows)

    def _follower_extra(self) -> tuple[dict[str, Any], list[JournalEntry]]:
        """The requests and the audit backlog as the database holds them (in a thread)."""
        journal, outbox = self._store.journal, self._store.outbox
        entries = journal.recent(SHOWN_REQUESTS)
        extra = {
            **self._gate.follower_extra,
            "audit_pending": outbox.pending_count(),
            "requests": [request_view(e) for e in entries],
            "request_count": journal.count(),
        }
        return extra, entries

    async def _lead_or_follow(self, group: asyncio.TaskGroup) -> None:
        leads = self._replicas.leader_term() is not None and not self.stopping
        if leads and self._leading is None:
            try:
                cursor = await self._state(None, self._store.get_cursor, CURSOR_KEY)
            except StoreError as exc:
                log.warning("replica %s leads, but cannot read the requests' cursor yet: %s",
                            self._replicas.id, exc)  # fmt: skip
                return
            log.info("replica %s leads (term %s): it runs requests and delivers audit",
                     self._replicas.id, self._replicas.leader_term())  # fmt: skip
            operations = self._make_operations(cursor)
            self._gate.lead(operations)
            self._leading = group.create_task(self._lead(operations), name="operations")
        elif not leads and self._gate.operations is not None:
            operations = self._gate.operations
            self._gate.follow()
            if not self.stopping:
                log.warning("replica %s leads no more: no request starts here", self._replicas.id)
            operations.processor.stop_requested = True  # before any other action starts
            group.create_task(self._retire(operations), name="retire")

    async def _lead(self, operations: Operations) -> None:
        try:
            await operations.run()
        except* StateWriteError as group:  # fenced on the way out: the next leader reports it
            log.warning("replica %s: operations ended: %s", self._replicas.id, group.exceptions[0])

    async def _retire(self, operations: Operations) -> None:
        """A running action gets one lease period to finish; then the term's work ends."""
        await operations.wait_idle(grace_s=self._replicas.lease_s)
        task, self._leading = self._leading, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._store.writes.forget(LEADER_WRITES)


@dataclass(frozen=True, slots=True)
class _Beat:
    """What one heartbeat found, and the fleet's rows and requests read after it."""

    standing: Standing
    rows: dict[CheckKey, CheckStatus] | None
    reachable: dict[str, bool]
    """Whether each host was reached on its last run, by the stored rows."""
    extra: tuple[dict[str, Any], list[JournalEntry]] | None
