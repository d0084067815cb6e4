"""Assembling and running the reconciler process: state, Git, transports, HTTP, signals."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

from agentless.local import LocalTransport
from agentless.ssh import SshSettings, SshTransport
from agentless.transport import TransportRouter
from reconciler.actions import ActionRunner
from reconciler.audit import AuditError, NotesPublisher
from reconciler.clock import Clock, RealClock
from reconciler.git.mirror import GitSource, GitSourceError, is_local, watch_local
from reconciler.loop.metrics import Metrics
from reconciler.loop.reconciler import Reconciler, ReconcilerOptions
from reconciler.model.runtime import DeliverySettings, RuntimeSettings
from reconciler.requests.processor import CURSOR_KEY, RequestProcessor
from reconciler.server.broker import EventBroker
from reconciler.server.connections import Limits
from reconciler.server.feed import AuditedPhases, EventFeed
from reconciler.server.fleet import Fleet, LeaderGate
from reconciler.server.http import (
    Endpoints,
    HttpEndpoint,
    HttpServerError,
    Mount,
    Snapshots,
    build_app,
    build_operator_app,
)
from reconciler.server.httpmetrics import HttpCollector
from reconciler.server.identity import Identity, IpNetwork
from reconciler.server.operations import (
    ActionPhases,
    AppliedRevision,
    AuditOutbox,
    MetricCounters,
    Operations,
    RecentRequests,
)
from reconciler.server.sse import HEARTBEAT_S
from reconciler.statuspage import AuditHistory, RecordedAuditLog, add_routes
from reconciler.statuspage.live import LoopPageSource
from reconciler.store.calls import StateCalls
from reconciler.store.protocol import StateError, StateStore, StoreError
from reconciler.store.sqlite import SqliteStore
from reconciler.store.writes import StateWriteError

log = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.001
STOP_GRACE_S = 30.0
"""On a clean stop, how long a running action may still take to finish (and have its real
outcome recorded) before it is given up and recorded ``unknown``; checks go on meanwhile."""


class ServiceError(Exception):
    """The reconciler cannot start: bad state directory, repo URL or listen address.

    ``exit_code`` is 2 when the state directory is refused (not OpsMap's, in use by
    another reconciler, written by a newer OpsMap), 1 otherwise.
    """

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


async def run_service(
    *,
    repo: str,
    branch: str | None,
    listen: tuple[str, int],
    metrics_listen: tuple[str, int] | None = None,
    state_dir: Path,
    poll_interval_s: float | None,
    state_url: str | None = None,
    webhook_secret: bytes | None,
    ssh_key_dir: Path | None = None,
    install_signal_handlers: bool = False,
    stop: asyncio.Event | None = None,
    clock: Clock | None = None,
    settings: RuntimeSettings | None = None,
    registry: CollectorRegistry | None = None,
    on_started: Callable[[Reconciler, HttpEndpoint], None] | None = None,
    stop_grace_s: float = STOP_GRACE_S,
    replica: str | None = None,
    lease_s: float | None = None,
    trusted_user_header: str | None = None,
    trusted_proxies: Sequence[IpNetwork] = (),
    limits: Limits | None = None,
    heartbeat_s: float = HEARTBEAT_S,
    mount: Mount | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``); in-flight checks are cancelled, state kept.

    ``state_dir`` should be absolute: the process may change directory meanwhile. With
    ``state_url`` (``postgresql://…``) the state is in that database, and ``state_dir``
    holds only the repo mirror and checkout.
    ``settings`` are the service's limits and intervals (the defaults when None).
    ``ssh_key_dir`` is the operator's folder of keys that an inventory's ``identity_file``
    may name (see :class:`agentless.ssh.SshSettings`). ``trusted_user_header`` and
    ``trusted_proxies``: see :mod:`reconciler.server.identity`; ``limits``, ``heartbeat_s``
    and ``mount`` (routes added to the application): see :mod:`reconciler.server.http`.
    ``metrics_listen``: the operator listener, which then serves ``/metrics`` alone (with
    the probes, which the main listener keeps too).
    ``replica`` (with ``state_url`` only) makes this process a replica of that name among
    others on the same database, with a leader lease of ``lease_s`` seconds
    (:mod:`reconciler.server.fleet`; None: the store's default).
    """
    # Worker threads (git, document encoding) share the interpreter lock with the loop:
    # hand it over every millisecond rather than every 5, so the loop answers meanwhile.
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
    clock = clock or RealClock()  # the one clock: the loop, requests, their actions, audit, state
    settings = settings or RuntimeSettings()
    if state_url is None:  # SQLite: opened on the loop's thread, which uses its connections
        store, where = _open_state(state_dir, state_url, clock, replica=replica, lease_s=lease_s)
    else:  # PostgreSQL: connecting is network I/O, in a thread (the loop serves nothing yet)
        store, where = await asyncio.to_thread(
            _open_state, state_dir, state_url, clock, replica=replica, lease_s=lease_s
        )
    try:
        core = await _assemble(
            store,
            repo=repo,
            branch=branch,
            state_dir=state_dir,
            poll_interval_s=poll_interval_s,
            ssh_key_dir=ssh_key_dir,
            clock=clock,
            settings=settings,
            registry=registry,
        )
        http = _http_endpoint(
            core,
            listen=listen,
            metrics_listen=metrics_listen,
            endpoints=_endpoints(core, webhook_secret),
            identity=Identity(trusted_user_header, trusted_proxies),
            limits=limits,
            heartbeat_s=heartbeat_s,
            mount=mount,
        )
    except HttpServerError as exc:
        store.close()
        raise ServiceError(str(exc)) from exc
    except BaseException:
        store.close()
        raise
    followed = branch if branch is not None else "the remote's default"
    log.info("following %s (branch %s); state in %s", core.source.display, followed, where)
    await _serve(
        core,
        http,
        repo=repo,
        stop=stop or asyncio.Event(),
        stop_grace_s=stop_grace_s,
        install_signal_handlers=install_signal_handlers,
        on_started=on_started,
    )


@dataclass
class _Core:
    """The service's parts, assembled (:func:`_assemble`), before HTTP is added."""

    store: StateStore
    source: GitSource
    transport: TransportRouter
    broker: EventBroker
    history: AuditHistory
    """The status page's recent audit records."""
    feed: EventFeed
    reconciler: Reconciler
    sink: Operations | LeaderGate
    """What runs requests and delivers audit: the operations, or for a replica the gate
    that holds the leader's current ones."""
    fleet: Fleet | None
    """This replica among the others (None: one process holds the state)."""
    state: StateCalls
    """How the loop calls the store (in a thread when it blocks)."""
    recent: RecentRequests
    """The newest requests as the request pipeline (or a follower's heartbeat) last read
    them: what the page shows, never a read of the journal on the loop."""

    def operations(self) -> Operations | None:
        """The request pipeline that ran last (the leader's, for a replica)."""
        return self.sink.operations if isinstance(self.sink, LeaderGate) else self.sink


def _open_state(
    state_dir: Path, state_url: str | None, clock: Clock, *, replica: str | None,
    lease_s: float | None,
) -> tuple[StateStore, str]:  # fmt: skip
    """The state store, claimed before anything else is touched, and where it is."""
    try:
        if state_url is None:
            return SqliteStore(state_dir, clock=clock), str(state_dir)
        return _postgres(state_url, state_dir, clock, replica=replica, lease_s=lease_s)
    except StateError as exc:
        raise ServiceError(str(exc), exit_code=2) from exc


async def _assemble(
    store: StateStore,
    *,
    repo: str,
    branch: str | None,
    state_dir: Path,
    poll_interval_s: float | None,
    ssh_key_dir: Path | None,
    clock: Clock,
    settings: RuntimeSettings,
    registry: CollectorRegistry | None,
) -> _Core:
    """Git, the transports, the request pipeline (or a replica's leader gate and fleet),
    the event feed and the loop, wired at construction."""
    try:
        source = GitSource(
            repo, branch=branch, cache_dir=state_dir / "git", timeout_s=settings.git.timeout_s
        )
    except ValueError as exc:
        raise ServiceError(str(exc)) from exc
    checkout = state_dir / "checkout"
    ssh = SshTransport(
        SshSettings(base_dir=checkout, key_dir=ssh_key_dir),
        per_host_limit=settings.ssh.per_host_limit,
        max_inflight=settings.ssh.max_inflight,
        max_connecting=settings.ssh.max_connecting,
        max_output=settings.ssh.max_output,
    )
    local = LocalTransport(max_output=settings.ssh.max_output)
    transport = TransportRouter(ssh=ssh, local=local)
    metrics = Metrics(registry or CollectorRegistry())
    phases = ActionPhases()
    broker = EventBroker()
    history = AuditHistory()
    state, recent = StateCalls.of(store), RecentRequests()

    def make_operations(cursor: str | None) -> Operations:
        return _operations(source, store, metrics, phases, transport, clock, settings.delivery,
                           broker, history, cursor=cursor, state=state,
                           recent=recent)  # fmt: skip

    replicas = getattr(store, "replicas", None)
    sink: Operations | LeaderGate
    if replicas is None:
        try:
            sink = make_operations(await state("cursor", store.get_cursor, CURSOR_KEY))
        except (StateWriteError, StoreError) as exc:
            raise ServiceError(f"cannot read the requests' cursor: {exc}", exit_code=2) from exc
    else:
        sink = LeaderGate()
    feed = EventFeed(sink, broker)
    reconciler = Reconciler(
        source=source,
        store=store,
        transport=transport,
        clock=clock,
        metrics=metrics,
        options=ReconcilerOptions(
            poll_interval_s=poll_interval_s,
            checkout_dir=checkout,
            persistence=settings.persistence,
        ),
        source_errors=(GitSourceError,),
        events=feed,
        phases=phases,
        extras=sink,
    )
    fleet = None
    if replicas is not None and isinstance(sink, LeaderGate):
        fleet = Fleet(
            store=store,  # type: ignore[arg-type]  # a PostgresStore: it has replicas
            replicas=replicas,
            reconciler=reconciler,
            gate=sink,
            make_operations=make_operations,
            state=state,
            recent=recent,
        )
        try:  # the first heartbeat says which hosts are this replica's before any check
            reconciler.placement = await fleet.first_placement()
        except (StateWriteError, StoreError) as exc:
            raise ServiceError(f"replica {replicas.id}: {exc}", exit_code=2) from exc
    feed.status_of = reconciler.component_status
    phases.on_change = feed.phase_changed
    return _Core(
        store, source, transport, broker, history, feed, reconciler, sink, fleet, state, recent
    )


def _endpoints(core: _Core, webhook_secret: bytes | None) -> Endpoints:
    reconciler, feed = core.reconciler, core.feed
    return Endpoints(
        registry=reconciler.metrics.registry,
        snapshot=reconciler.view,
        health=reconciler.health,
        readiness=lambda: _readiness(reconciler, feed),
        fetch_now=reconciler.fetch_now,
        webhook_secret=webhook_secret,
        count_webhook=lambda result: reconciler.metrics.webhook_total.labels(result).inc(),
        visibility=lambda: feed.visibility,
        request_target=core.history.target,
    )


def _http_endpoint(
    core: _Core,
    *,
    listen: tuple[str, int],
    metrics_listen: tuple[str, int] | None,
    endpoints: Endpoints,
    identity: Identity,
    limits: Limits | None,
    heartbeat_s: float,
    mount: Mount | None,
) -> HttpEndpoint:
    """The HTTP endpoint with the status page's routes (and ``mount``'s) on its app, the
    page reading the endpoint's shared snapshots; :class:`HttpServerError` if it cannot
    listen."""

    def app(snapshots: Snapshots) -> web.Application:
        page = LoopPageSource(
            core.reconciler,
            history=core.history,
            recent=core.recent.recent,
            snapshot=snapshots.current,
            visibility=lambda: core.feed.visibility,
            branch=lambda: core.source.branch,
        )

        def mount_page(app: web.Application) -> None:
            add_routes(app, page)
            if mount is not None:
                mount(app)

        return build_app(
            endpoints,
            broker=core.broker,
            identity=identity,
            snapshots=snapshots,
            limits=limits,
            heartbeat_s=heartbeat_s,
            mount=mount_page,
            metrics=metrics_listen is None,
        )

    http = HttpEndpoint(
        *listen,
        app,
        snapshot=core.reconciler.view,
        broker=core.broker,
        limits=limits,
        generation=lambda: core.reconciler.check_views.generation,
        operator_listen=metrics_listen,
        operator_app=lambda snapshots: build_operator_app(endpoints, snapshots=snapshots),
    )
    endpoints.registry.register(HttpCollector(http))
    return http


async def _serve(
    core: _Core,
    http: HttpEndpoint,
    *,
    repo: str,
    stop: asyncio.Event,
    stop_grace_s: float,
    install_signal_handlers: bool,
    on_started: Callable[[Reconciler, HttpEndpoint], None] | None,
) -> None:
    """Run the loop; once it has resumed the applied revision, the request pipeline (or
    the fleet), HTTP and the local repo's watch beside it; stop on ``stop`` (a running
    request gets ``stop_grace_s``), then close everything in order."""
    reconciler = core.reconciler
    loop = asyncio.get_running_loop()
    if install_signal_handlers:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    loop_stop = asyncio.Event()  # set once a running request had its grace (checks go on)

    async def stop_after_grace() -> None:
        await stop.wait()
        if core.fleet is not None:
            core.fleet.stopping = True  # it takes the lead no more; a running request finishes
        await core.sink.wait_idle(grace_s=stop_grace_s)
        loop_stop.set()

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(stop_after_grace(), name="stop")]

            async def serve() -> None:
                await http.start()
                if on_started is not None:
                    on_started(reconciler, http)

            def ready() -> None:
                # the state is restored and the applied revision resumed: requests and
                # audit delivery start now, beside the loop, and the endpoint serves
                if core.fleet is not None:
                    work = core.fleet.run()
                else:
                    assert isinstance(core.sink, Operations)
                    work = core.sink.run()
                tasks.append(group.create_task(work, name="operations"))
                group.create_task(serve(), name="http")

            if is_local(repo):
                tasks.append(group.create_task(_watch(repo, reconciler, stop), name="watch"))
            await reconciler.run(loop_stop, ready=ready)
            for task in tasks:
                task.cancel()
    finally:
        await http.stop()
        await core.transport.aclose()
        core.source.close()
        last = core.operations()
        # a store that blocks: in a thread, and given up (the log says so) if it hangs
        try:
            if last is not None:
                await core.state(None, _store_last_records, last.outbox)
            await core.state(None, core.store.close)
        except StoreError as exc:
            log.error("state: not closed cleanly: %s", exc)
        if install_signal_handlers:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        log.info("stopped")


def _postgres(
    url: str, state_dir: Path, clock: Clock, *, replica: str | None, lease_s: float | None
) -> tuple[StateStore, str]:
    """The PostgreSQL store and its masked URL (psycopg is imported only when used)."""
    from reconciler.store.postgres import PostgresStore

    lease = {} if lease_s is None else {"lease_s": lease_s}
    store = PostgresStore(url, state_dir=state_dir, clock=clock, replica=replica, **lease)
    return store, store.shown


def _operations(
    source: GitSource,
    store: StateStore,
    metrics: Metrics,
    phases: ActionPhases,
    transport: TransportRouter,
    clock: Clock,
    delivery: DeliverySettings,
    broker: EventBroker,
    history: AuditHistory,
    *,
    cursor: str | None,
    state: StateCalls,
    recent: RecentRequests,
) -> Operations:
    """Requests, their actions, and the audit trail delivered as notes to the map repo;
    the processor's records are also its events (:class:`AuditedPhases`); ``cursor``:
    where the requests' history was read up to (the store's). With a store that blocks,
    the audit log is deferred and every call goes through ``state``, in a thread."""
    applied = AppliedRevision()
    outbox = RecordedAuditLog(store.outbox, clock=clock, history=history)
    outbox.deferred = state.blocks
    processor = RequestProcessor(
        source=source,
        journal=store.journal,
        auditor=AuditedPhases(outbox, broker),
        executor=ActionRunner(
            transport,
            clock=clock,
            set_phase=phases.set_phase,
            masker=lambda: applied.masker,
        ),
        counters=MetricCounters(metrics),
        cursor=cursor,
        save_cursor=lambda sha: store.set_cursor(CURSOR_KEY, sha),
        applied_revision=lambda: applied.sha,
        clock=clock,
        state=state,
    )
    return Operations(
        processor=processor,
        applied=applied,
        outbox=outbox,
        publisher_factory=lambda ref, push: NotesPublisher(
            source.mirror, source.url, notes_ref=ref, push=push
        ),
        metrics=metrics,
        delivery_errors=(AuditError, GitSourceError),
        delivery=delivery,
        state=state,
        recent=recent,
    )


def _readiness(reconciler: Reconciler, feed: EventFeed) -> str | None:
    """``/readyz``: None once a revision runs and the loop has caught up with the branch
    (a fetch since the start, or the fetch's error known) and keeps up; else why not."""
    if feed.applied is None:
        if reconciler.fetch_error is not None:
            return f"no revision applied yet: cannot fetch the map repo: {reconciler.fetch_error}"
        if reconciler.revisions.error_count:
            return (
                f"no revision applied yet: revision {(reconciler.revisions.attempted or '')[:12]}"
                f" rejected with {reconciler.revisions.error_count} error(s)"
            )
        return "no revision applied yet"
    if not feed.caught_up and reconciler.fetch_error is None:
        return "catching up with the branch: the first fetch has not finished"
    ok, problem = reconciler.health()
    return None if ok else problem


def _store_last_records(outbox: AuditOutbox) -> None:
    """On the way out, a last attempt at the audit records the state could not store yet;
    those still not stored are named in the log (they exist nowhere else)."""
    if not outbox.unstored:
        return
    try:
        outbox.flush()
    except (StateWriteError, AuditError) as exc:
        log.error("audit: %d record(s) lost on stopping, never stored: %s", outbox.unstored, exc)


async def _watch(repo: str, reconciler: Reconciler, stop: asyncio.Event) -> None:
    """Fetch as soon as the local repo's branch moves (a commit, or a push into it)."""
    try:
        async for _ in watch_local(repo, stop_event=stop):
            reconciler.fetch_now()
    except GitSourceError as exc:
        log.warning("not watching %s for changes (polling only): %s", repo, exc)
