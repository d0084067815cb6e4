"""The long-running reconciler: follow the map repo, apply valid revisions, run checks.

Level-based, like controller-runtime and Flux: each new head is read whole from Git at
that commit, validated, and either applied (workers restarted only for maps whose checks
changed) or rejected, in which case the last good revision keeps running and the status,
metrics and log say so. Nothing from a webhook's payload is trusted: a hook only asks for
a fetch now.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agentless.result import CheckOutcome, CheckState
from agentless.runner import CheckRun, run_check
from agentless.transport import Transport
from reconciler.clock import Clock
from reconciler.findings import Finding, Location, Severity
from reconciler.logcontext import context
from reconciler.loop.bridge import LoopBridge
from reconciler.loop.checkout import materialize
from reconciler.loop.checkstate import CheckStatus
from reconciler.loop.events import (
    LoopEvents,
    NoExtras,
    NoPhases,
    NullEvents,
    PhaseSource,
    StatusExtras,
)
from reconciler.loop.metrics import SCRAPED, Metrics, SnapshotCollector
from reconciler.loop.placement import Placement
from reconciler.loop.rows import check_rows, load_checks, refused, save_check_rows
from reconciler.loop.scheduler import CheckKey, MapWorker, ScheduledCheck, fingerprint, group_by_map
from reconciler.loop.targets import scheduled_checks
from reconciler.loop.view import CheckViews, Revisions, Snapshot, build_snapshot
from reconciler.model.masking import Masker
from reconciler.model.runtime import PersistenceSettings
from reconciler.model.settings import Settings
from reconciler.model.status import component_status
from reconciler.repo.loader import MapRepo, RepoFile, load_repo
from reconciler.rules import Probe, blocking_errors, check_repo
from reconciler.store.protocol import CheckRow, StateStore, StoreError
from reconciler.store.writes import StateWriteError

log = logging.getLogger(__name__)
Reachability = Mapping[str, bool] | None
"""Whether each host was reached on its newest run (hosts absent: not known)."""

POLL_JITTER = 0.2


class FetchOutcome(Protocol):
    @property
    def head(self) -> str: ...

    @property
    def changed(self) -> bool: ...


class RepoSource(Protocol):
    """Where revisions come from (a :class:`reconciler.git.mirror.GitSource`); blocking calls."""

    @property
    def branch(self) -> str:
        """The branch followed (the remote's default once looked up, when none was given)."""
        ...

    def fetch(self) -> FetchOutcome: ...

    def files_at(self, sha: str) -> list[RepoFile]: ...

    def read_file(self, sha: str, path: str) -> bytes | None: ...

    def probe_at(self, sha: str) -> Probe: ...


@dataclass(frozen=True)
class ReconcilerOptions:
    poll_interval_s: float | None = None
    """Seconds between asks for the remote's head; None: the applied revision's
    ``poll_interval_secs`` (``opsmap.yaml``), its default before one is applied."""
    max_hosts_in_flight_per_map: int | None = None
    """Hosts of one map with checks in flight; None: ``scheduler.MAX_HOSTS_IN_FLIGHT``."""
    checkout_dir: Path | None = None
    """Where files the inventory points at (``known_hosts``) are written for each revision."""
    persistence: PersistenceSettings = field(default_factory=PersistenceSettings)
    """How often check states are saved, and when a save is logged as slow."""


class Reconciler:
    """Keeps the live state of every map in step with the tracked branch."""

    def __init__(
        self,
        *,
        source: RepoSource,
        store: StateStore,
        transport: Transport,
        clock: Clock,
        metrics_registry: Any = None,
        metrics: Metrics | None = None,
        options: ReconcilerOptions | None = None,
        source_errors: tuple[type[Exception], ...] = (),
        rng: random.Random | None = None,
        events: LoopEvents | None = None,
        phases: PhaseSource | None = None,
        extras: StatusExtras | None = None,
    ) -> None:
        """``metrics``: the counters to update (made on ``metrics_registry`` if not given:
        one of the two); the state gauges are added to their registry here. ``events``,
        ``phases``, ``extras``: see :mod:`reconciler.loop.events` (none by default)."""
        self.source = source
        self.store = store
        self.transport = transport
        self.clock = clock
        self.options = options or ReconcilerOptions()
        self._source_errors = source_errors
        self._rng = rng or random.Random()
        self.events: LoopEvents = events or NullEvents()
        self._phases: PhaseSource = phases or NoPhases()
        self._extras: StatusExtras = extras or NoExtras()
        if metrics is None:
            if metrics_registry is None:
                raise ValueError("give the metrics or their registry")
            metrics = Metrics(metrics_registry)
        self.metrics = metrics
        metrics.registry.register(SnapshotCollector(self._scraped))
        store.writes.on_failure = self.metrics.state_write_failed
        self.revisions = Revisions()
        self.repo: MapRepo | None = None
        self.scheduled: list[ScheduledCheck] = []
        self.statuses: dict[CheckKey, CheckStatus] = {}
        self.hosts_reachable: dict[str, bool] = {}
        self.masker = Masker()
        """The applied revision's ``mask:`` patterns (check messages, action output)."""
        self.fetch_error: str | None = None
        self.wall_offset = clock.wall() - clock.now()
        self.applied_event = asyncio.Event()
        self._fetch_now = asyncio.Event()
        self._workers: dict[str, tuple[tuple[object, ...], asyncio.Task[None]]] = {}
        self._component_checks: dict[tuple[str, str], list[CheckKey]] = {}
        self._component_status: dict[tuple[str, str], str] = {}
        self._group: asyncio.TaskGroup | None = None
        self._changed: set[CheckKey] = set()
        """Checks whose status changed since the last save (only those are written)."""
        self._removed: set[CheckKey] = set()
        """Checks gone with a revision since the last save (their rows are removed)."""
        self.placement: Placement | None = None
        """Replicas only: which hosts this replica checks (None: every host, one process)."""
        self._check_seen: dict[CheckKey, tuple[object, ...]] = {}
        """What each check's event last told (:meth:`_note_check`)."""
        self.bridge = LoopBridge()
        """The loop's heartbeat, and how other threads reach the loop."""
        self.check_views = CheckViews(self.wall_offset)
        """Each check's view, built when the check changes (:meth:`_note_check`)."""

    # -- running ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, ready: Callable[[], None] | None = None) -> None:
        """Run until ``stop`` is set; then cancel in-flight checks and persist state.

        ``ready`` is called once the state is restored and the revision applied before a
        restart is running again: serve from then on, so no scrape sees an empty state.
        """
        self.bridge.attach()
        await asyncio.to_thread(self._restore)  # nothing else uses the store yet
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                if self.revisions.applied:
                    await self._resume(self.revisions.applied)
                if ready is not None:
                    ready()
                group.create_task(self._follow(), name="follow")
                group.create_task(self._persist_periodically(), name="persist")
                await stop.wait()
                raise _Stopping
        except* _Stopping:
            log.info("stopping: in-flight checks cancelled")
        finally:
            self._group = None
            self._workers.clear()
            self.bridge.detach()
            self.persist()

    def fetch_now(self) -> None:
        """Ask for a fetch as soon as possible; callable from any thread."""
        self.bridge.call_soon(self._fetch_now.set)

    def poll_interval_s(self) -> float:
        """The poll interval in force: the option when given, else the applied revision's."""
        if self.options.poll_interval_s is not None:
            return self.options.poll_interval_s
        repo = self.repo
        settings = repo.effective_settings if repo is not None else Settings()
        return settings.poll_interval_secs

    async def _follow(self) -> None:
        while True:
            self._fetch_now.clear()
            await self.fetch_and_reconcile()
            delay = self.poll_interval_s() * self._rng.uniform(1 - POLL_JITTER, 1 + POLL_JITTER)
            try:
                async with asyncio.timeout(delay):
                    await self._fetch_now.wait()
            except TimeoutError:
                pass

    async def fetch_and_reconcile(self) -> None:
        try:
            fetched = await asyncio.to_thread(self.source.fetch)
        except self._source_errors as exc:
            self.metrics.git_fetch_total.labels("error").inc()
            if self.fetch_error != str(exc):
                log.error(
                    "cannot fetch the map repo: %s (still running %s)", exc, self._short_applied()
                )
            self.fetch_error = str(exc)
            return
        self.fetch_error = None
        self.metrics.git_fetch_total.labels("changed" if fetched.changed else "unchanged").inc()
        if fetched.head == self.revisions.applied and self.repo is None:
            # the stored revision could not be resumed before this fetch (a new mirror: a
            # new replica, a lost cache): it is read now
            await self.reconcile(fetched.head)
        elif fetched.head == self.revisions.applied and self.revisions.attempted != fetched.head:
            # the rejected commit was force-pushed away: the branch is the applied revision again
            log.warning(
                "branch is back at the applied revision %s: rejection cleared", fetched.head[:12]
            )
            self.revisions.attempted, self.revisions.attempted_at = fetched.head, self.clock.wall()
            self.revisions.clear_errors()
            self.persist_meta()
        elif fetched.head != self.revisions.attempted:
            await self.reconcile(fetched.head)
        if self.revisions.applied is not None:
            self.events.head_seen(fetched.head)

    async def reconcile(self, sha: str) -> bool:
        """Read, validate and apply the revision ``sha``; False when it was rejected."""
        try:
            repo, findings = await asyncio.to_thread(self._load, sha)
        except self._source_errors as exc:
            findings = [Finding(Location("."), Severity.ERROR, "unreadable-revision", str(exc))]
            repo = None
        self.revisions.attempted, self.revisions.attempted_at = sha, self.clock.wall()
        problems = blocking_errors(findings)
        if repo is None or problems:
            self.revisions.reject(problems)
            self.metrics.reconcile_total.labels("rejected").inc()
            about = context(revision=sha)
            log.error(
                "REVISION %s REJECTED with %d error(s); still running %s",
                sha[:12],
                len(problems),
                self._short_applied(),
                extra=about,
            )
            for finding in problems[:20]:
                log.error(
                    "  %s: %s [%s]", finding.location, finding.message, finding.code, extra=about
                )
            self.persist_meta()
            self.events.revision_rejected(sha, problems)
            return False
        await asyncio.to_thread(self._materialize, sha, repo)
        self.apply(sha, repo)
        return True

    def _load(self, sha: str) -> tuple[MapRepo, list[Finding]]:
        repo = load_repo(self.source.files_at(sha))
        return repo, check_repo(repo, probe=self.source.probe_at(sha))

    async def _resume(self, sha: str) -> None:
        """After a restart, run the revision that was applied before it, if Git still has it."""
        try:
            repo, findings = await asyncio.to_thread(self._load, sha)
        except self._source_errors as exc:
            log.warning(
                "cannot read the last applied revision %s: %s",
                sha[:12],
                exc,
                extra=context(revision=sha),
            )
            return
        if not blocking_errors(findings):
            await asyncio.to_thread(self._materialize, sha, repo)
            self.apply(sha, repo, resumed=True)

    def _materialize(self, sha: str, repo: MapRepo) -> None:
        """Write the files the inventory refers to into the checkout (:mod:`.checkout`)."""
        materialize(self.options.checkout_dir, sha, repo, self.source.read_file)

    def apply(self, sha: str, repo: MapRepo, *, resumed: bool = False) -> None:
        scheduled = scheduled_checks(repo)
        keep = {check.key for check in scheduled}
        for key in [k for k in self.statuses if k not in keep]:
            del self.statuses[key]
            self._changed.discard(key)
            self._removed.add(key)
        self._check_seen = {k: v for k, v in self._check_seen.items() if k in keep}
        self.check_views.applied(scheduled)
        old_checks = {(c.key.map, c.key.component, c.key.check) for c in self.scheduled}
        for gone in old_checks - {(k.map, k.component, k.check) for k in keep}:
            self.metrics.forget_check(*gone)
        self.masker = repo.effective_settings.masker()
        self._restart_workers(scheduled)
        self.repo, self.scheduled = repo, scheduled
        if not resumed:
            self.revisions.applied, self.revisions.applied_at = sha, self.clock.wall()
        self.revisions.attempted = self.revisions.attempted or sha
        if self.revisions.attempted == sha:
            self.revisions.clear_errors()
        self.metrics.reconcile_total.labels("resumed" if resumed else "applied").inc()
        log.info(
            "revision %s applied: %d maps, %d checks",
            sha[:12],
            len(repo.maps),
            len(scheduled),
            extra=context(revision=sha),
        )
        self._component_checks = {}
        for check in scheduled:
            key = check.key
            self._component_checks.setdefault((key.map, key.component), []).append(key)
        self.persist_meta()
        self.events.revision_applied(sha, repo, resumed=resumed)
        self.applied_event.set()

    def _restart_workers(self, scheduled: list[ScheduledCheck]) -> None:
        if self._group is None:
            return
        placement = self.placement
        if placement is not None:
            scheduled = [c for c in scheduled if placement.checks(c.key.host)]
        grouped = group_by_map(scheduled)
        for name in list(self._workers):
            fp, task = self._workers[name]
            if name not in grouped or fp != fingerprint(grouped[name]):
                task.cancel()
                del self._workers[name]
        for name, checks in grouped.items():
            if name in self._workers:
                continue
            worker = MapWorker(
                checks,
                statuses=self.statuses,
                run_check=self._run_check,
                clock=self.clock,
                on_result=self._on_result,
                on_lag=self.metrics.check_schedule_lag.observe,
                rng=self._rng,
                max_hosts_in_flight=self.options.max_hosts_in_flight_per_map,
            )
            task = self._group.create_task(worker.run(), name=f"map {name}")
            self._workers[name] = (fingerprint(checks), task)

    def place(self, placement: Placement) -> None:
        """Replicas: check the hosts ``placement`` gives this replica from now on. Only the
        maps whose own hosts moved have their worker restarted (each check resumes where its
        schedule was, from its last run)."""
        if placement == self.placement:
            return
        moved = self.placement is None or placement.live != self.placement.live
        self.placement = placement
        if moved:
            self._restart_workers(self.scheduled)

    def observe(
        self, stored: Mapping[CheckKey, CheckStatus], *, reachable: Reachability = None
    ) -> None:
        """Replicas: take in the stored statuses of the checks other replicas run (the
        whole fleet shows on every replica) and whether their hosts were reached; those
        of this replica's hosts are its own. ``stored`` and ``reachable`` are
        :func:`~reconciler.loop.rows.statuses_from_rows` and ``reachable_from_rows`` of
        the rows, made in a thread: here, on the loop, only what is someone else's is taken."""
        placement = self.placement
        if placement is None:
            return
        for host, up in (reachable or {}).items():
            if not placement.checks(host):
                self.hosts_reachable[host] = up
        for check in self.scheduled:
            key = check.key
            status = stored.get(key)
            if status is None or placement.checks(key.host):
                continue
            old = self.statuses.get(key)
            self.statuses[key] = status
            self._note_check(check, status)  # the event stream shows the whole fleet too
            if old is not None and old.hard_state is not status.hard_state:
                self._note_component(key.map, key.component)

    async def _run_check(self, check: ScheduledCheck) -> CheckRun:
        """Run one check; a bug below shows as an UNKNOWN check, never a dead reconciler."""
        try:
            run = await run_check(check.target, transport=self.transport, wall=self.clock.wall)
        except Exception as exc:  # the engine's contract is to raise nothing; keep running
            log.exception("check %s failed inside OpsMap", check.target.key)
            outcome = CheckOutcome(
                CheckState.UNKNOWN, f"internal error: {type(exc).__name__}: {exc}"
            )
            return CheckRun(check.target, outcome, 0.0, self.clock.wall())
        if not self.masker.patterns:
            return run
        message = self.masker.apply(run.outcome.message)
        return dataclasses.replace(run, outcome=dataclasses.replace(run.outcome, message=message))

    def _on_result(
        self, check: ScheduledCheck, run: CheckRun, status: CheckStatus, changed: bool
    ) -> None:
        key = check.key
        self._changed.add(key)
        self.hosts_reachable[key.host] = not run.host_unreachable
        self.metrics.check_duration.labels(key.map, key.component, key.check).observe(
            run.duration_s
        )
        self._note_check(check, status)
        if changed:
            self._note_component(key.map, key.component)
        self.metrics.check_runs_total.labels(
            key.map, key.component, key.check, run.outcome.state.name
        ).inc()

    def _note_check(self, check: ScheduledCheck, status: CheckStatus) -> None:
        """Build the check's view for the snapshots, a result at a time (every change of a
        status passes here), and tell the events sink when a check's state, hard state,
        attempt or flapping changed (a new message or value alone tells nothing)."""
        view = self.check_views.update(check, status)
        seen = (status.state, status.hard_state, status.state_type, status.attempt, status.flapping)
        if self._check_seen.get(check.key) == seen:
            return
        self._check_seen[check.key] = seen
        self.events.check_changed(check.key.map, check.key.component, view)

    def _note_component(self, map_name: str, component: str) -> None:
        """Tell the events sink when a component's status changes with a check's hard state.

        Only once every check of the component has a hard state: the first settled status
        is a baseline, not a change (a restart would otherwise report every component).
        """
        keys = self._component_checks.get((map_name, component), [])
        hard = [self.statuses[k].hard_state if k in self.statuses else None for k in keys]
        if any(state is None for state in hard):
            return
        new = component_status(hard).value
        old = self._component_status.get((map_name, component))
        self._component_status[(map_name, component)] = new
        if old is not None and new != old:
            self.events.component_changed(map_name, component, old, new)

    # -- state -----------------------------------------------------------------------

    def _restore(self) -> None:
        meta = self.store.get_meta()
        self.revisions.restore(meta)
        self.statuses = load_checks(self.store, wall_offset=self.wall_offset)
        reachable = meta.get("hosts_reachable")
        if isinstance(reachable, dict):
            self.hosts_reachable = {str(k): bool(v) for k, v in reachable.items()}

    def persist_meta(self, *, now: bool = False) -> None:
        """Save the revisions' state; when it cannot be written, or the store blocks (not on
        the loop) and not ``now``, the next periodic save writes it (in a thread)."""
        if now or not self.store.blocks:
            self._save_meta(self._meta())

    def _save_meta(self, meta: dict[str, object]) -> None:
        """The revisions' state; a failure is the store's to report (StateWriteError: logged,
        counted, on /healthz) or this save's (StoreError: logged), never the loop's."""
        try:
            self.store.set_meta(meta)
        except StateWriteError:
            pass  # reported by the store; written by the next save
        except StoreError as exc:
            log.error("state: revisions not saved: %s", exc)

    def _meta(self) -> dict[str, object]:
        """The revisions' state; and which hosts were reached, by one process (replicas
        each reach only their own hosts: the check rows say how the others' went)."""
        meta = self.revisions.to_meta()
        if self.placement is None:
            meta["hosts_reachable"] = dict(self.hosts_reachable)
        return meta

    def _take_changes(self) -> tuple[list[CheckRow], list[CheckKey]]:
        """The rows of the checks this process ran since the last save, and the checks
        removed since: copied on the loop (the loop goes on changing statuses)."""
        changed, self._changed = self._changed, set()
        removed, self._removed = list(self._removed), set()
        mine = {k: self.statuses[k] for k in changed if k in self.statuses}
        reached = self.hosts_reachable
        return check_rows(mine, wall_offset=self.wall_offset, reachable=reached), removed

    def _keep_changes(self, rows: list[CheckRow], removed: list[CheckKey]) -> None:
        """A save failed: its checks are saved with the next one (unless gone meanwhile)."""
        self._changed.update(k for k in (CheckKey(*r[:4]) for r in rows) if k in self.statuses)
        self._removed.update(k for k in removed if k not in self.statuses)

    def persist(self) -> None:
        self.persist_meta(now=True)
        rows, removed = self._take_changes()
        try:
            refused(save_check_rows(self.store, rows, removed=removed), self.store.writes)
        except StateWriteError as exc:
            log.error("check states not saved on the way out: %s", exc)

    async def _persist_periodically(self) -> None:
        while True:
            await self.clock.sleep(self.options.persistence.interval_s)
            # The meta is a few rows: in SQLite, cheap on the loop (on the loop's own
            # connection); PostgreSQL is a round trip: a worker thread's (its pool is
            # thread-safe). The check statuses grow with the repo: copied here, written
            # by a worker thread.
            if not self.store.blocks:
                self.persist_meta()
            else:
                await asyncio.to_thread(self._save_meta, self._meta())
            rows, removed = self._take_changes()
            write = functools.partial(save_check_rows, self.store, rows, removed=removed)
            try:
                async with asyncio.timeout(self.options.persistence.timeout_s):
                    refused(await asyncio.to_thread(write), self.store.writes)
            except TimeoutError:
                log.warning(
                    "saving check states took over %g s; still trying",
                    self.options.persistence.timeout_s,
                )
            except StateWriteError:  # logged, counted and on /healthz by the store
                self._keep_changes(rows, removed)  # saved with the next save

    # -- views -----------------------------------------------------------------------

    def view(self) -> Snapshot:
        """The typed snapshot of the live state (on the event loop's thread)."""
        return build_snapshot(
            revisions=self.revisions,
            repo=self.repo,
            scheduled=self.scheduled,
            statuses=self.statuses,
            wall_offset=self.wall_offset,
            views=self.check_views,
            hosts_reachable=self.hosts_reachable,
            actions=self._phases.phases(),
            fetch_error=self.fetch_error,
            branch=self.source.branch,
            ssh_connections=self.transport.connections,
            state_write_errors=self.store.writes.failing(),
            extra=self._extras.snapshot_extra(),
            placement=self.placement,
        )

    def snapshot(self) -> dict[str, Any]:
        """The ``/api/v1/status`` document of :meth:`view` (on the event loop's thread)."""
        return self.view().to_json()

    def _scraped(self) -> Snapshot:
        """The snapshot a scrape passed in (:func:`~reconciler.loop.metrics.expose`); on
        the loop's own thread (or before it runs), the live state's."""
        passed = SCRAPED.get()
        if passed is not None:
            return passed
        if self.bridge.foreign_thread:
            raise RuntimeError("scrape in another thread than the loop's: pass a snapshot")
        return self.view()

    def component_status(self, map_name: str, component: str) -> str | None:
        """The status a component's checks give it; None until they all have a hard state."""
        return self._component_status.get((map_name, component))

    def health(self) -> tuple[bool, str | None]:
        """Whether the loop is running and keeping up, and if not why; any thread, no wait.

        Reads the heartbeat the loop keeps current: a loop that was blocked or overloaded
        shows as unhealthy for a while after, with how long (see
        :meth:`~reconciler.loop.bridge.LoopBridge.loop_problem`).
        Unhealthy too while writes to the state fail (disk full…), with what and why.
        """
        problem = self.bridge.loop_problem() or self.store.writes.problem()
        return (False, problem) if problem is not None else (True, None)

    def _short_applied(self) -> str:
        applied = self.revisions.applied
        return f"revision {applied[:12]}" if applied else "no revision yet"


class _Stopping(Exception):
    """Raised inside the task group to cancel everything on stop."""
