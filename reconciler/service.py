"""Assembling and running the reconciler process: state, Git, transports, HTTP, signals."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry

from agentless.local import LocalTransport
from agentless.ssh import SshSettings, SshTransport
from agentless.transport import TransportRouter
from reconciler.clock import Clock, RealClock
from reconciler.gitsource import GitSource, GitSourceError, is_local, watch_local
from reconciler.http import Endpoints, HttpEndpoint, HttpServerError
from reconciler.reconciler import Reconciler, ReconcilerOptions
from reconciler.state import StateError, StateStore

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """The reconciler cannot start: bad state directory, repo URL or listen address."""


async def run_service(
    *,
    repo: str,
    branch: str,
    listen: tuple[str, int],
    state_dir: Path,
    poll_interval_s: float,
    webhook_secret: bytes | None,
    install_signal_handlers: bool = False,
    stop: asyncio.Event | None = None,
    clock: Clock | None = None,
    registry: CollectorRegistry | None = None,
    on_started: Callable[[Reconciler, HttpEndpoint], None] | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``); in-flight checks are cancelled, state kept.

    ``state_dir`` should be absolute: the process may change directory meanwhile.
    """
    try:
        store = StateStore(state_dir)
    except StateError as exc:
        raise ServiceError(str(exc)) from exc
    try:
        source = GitSource(repo, branch=branch, cache_dir=state_dir / "git")
    except ValueError as exc:
        raise ServiceError(str(exc)) from exc
    checkout = state_dir / "checkout"
    ssh = SshTransport(SshSettings(base_dir=checkout))
    transport = TransportRouter(ssh=ssh, local=LocalTransport())
    reconciler = Reconciler(
        source=source,
        store=store,
        transport=transport,
        clock=clock or RealClock(),
        metrics_registry=registry or CollectorRegistry(),
        options=ReconcilerOptions(poll_interval_s=poll_interval_s, checkout_dir=checkout),
        source_errors=(GitSourceError,),
    )
    endpoints = Endpoints(
        registry=reconciler.metrics.registry,
        status=reconciler.snapshot_from_thread,
        healthy=reconciler.healthy,
        fetch_now=reconciler.fetch_now,
        webhook_secret=webhook_secret,
        count_webhook=lambda result: reconciler.metrics.webhook_total.labels(result).inc(),
    )
    try:
        http = HttpEndpoint(*listen, endpoints)
    except HttpServerError as exc:
        store.close()
        raise ServiceError(str(exc)) from exc

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if install_signal_handlers:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    http.start()
    log.info("following %s (branch %s); state in %s", source.display, branch, state_dir)
    if on_started is not None:
        on_started(reconciler, http)
    try:
        async with asyncio.TaskGroup() as group:
            watcher = None
            if is_local(repo):
                watcher = group.create_task(_watch(repo, reconciler, stop), name="watch")
            await reconciler.run(stop)
            if watcher is not None:
                watcher.cancel()
    finally:
        http.stop()
        await transport.aclose()
        store.close()
        if install_signal_handlers:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        log.info("stopped")


async def _watch(repo: str, reconciler: Reconciler, stop: asyncio.Event) -> None:
    """Fetch as soon as the local repo's branch moves (a commit, or a push into it)."""
    try:
        async for _ in watch_local(repo, stop_event=stop):
            reconciler.fetch_now()
    except GitSourceError as exc:
        log.warning("not watching %s for changes (polling only): %s", repo, exc)
