"""``opsmap check``: run every selected check once on every matching host, and print it."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from agentless.runner import CheckRun, CheckTarget, run_checks
from reconciler.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, usage_error, verbosity
from reconciler.cli.loading import load_valid_repo
from reconciler.cli.progress import Progress
from reconciler.cli.run import (
    add_key_dir_argument,
    add_max_output_argument,
    key_dir_argument,
    max_output_argument,
)
from reconciler.cli.table import output_width, render_table
from reconciler.inert import one_line
from reconciler.loop.scheduler import CheckKey
from reconciler.loop.targets import scheduled_checks
from reconciler.model.masking import Masker


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repo", type=Path, default=Path("."), metavar="PATH", help="map repo root"
    )
    parser.add_argument("--map", metavar="NAME", help="only this map")
    parser.add_argument("--component", metavar="ID", help="only this component")
    parser.add_argument("--format", choices=["table", "json"], default="table")
    parser.add_argument(
        "--concurrency", type=int, default=256, help="checks in flight at once (default 256)"
    )
    add_key_dir_argument(parser)
    add_max_output_argument(parser)


def run(args: argparse.Namespace) -> int:
    key_dir = key_dir_argument(args.ssh_key_dir)
    if isinstance(key_dir, int):
        return key_dir
    max_output = max_output_argument(args.max_output)
    if max_output is None:
        return EXIT_USAGE
    repo = load_valid_repo(args.repo)
    if repo is None:
        return EXIT_USAGE
    scheduled = scheduled_checks(repo)
    if args.map:
        if repo.map(args.map) is None:
            return usage_error(f"no map named '{args.map}' in {args.repo}/maps")
        scheduled = [c for c in scheduled if c.key.map == args.map]
    if args.component:
        if not any(m.model.component(args.component) for m in repo.maps):
            return usage_error(f"no component '{args.component}' in the selected maps")
        scheduled = [c for c in scheduled if c.key.component == args.component]
    if not scheduled:
        print("opsmap: no check selected: no component of the selection has hosts", file=sys.stderr)
        return EXIT_FAILED
    targets = [c.target for c in scheduled]
    progress = Progress(len(targets), quiet=verbosity(args) < 0)
    try:
        runs = asyncio.run(
            _run(
                targets,
                repo_root=args.repo.resolve(),
                key_dir=key_dir,
                max_output=max_output,
                concurrency=args.concurrency,
                on_result=progress.done,
            )
        )
    finally:
        progress.clear()
    masker = repo.effective_settings.masker()
    runs = [_masked(r, masker) for r in runs]
    keyed = [(c.key, r) for c, r in zip(scheduled, runs, strict=True)]
    if args.format == "json":
        rows = [
            {
                "map": key.map,
                "component": key.component,
                "host": key.host,
                "check": key.check,
                "state": r.outcome.state.name,
                "duration_s": round(r.duration_s, 4),
                "message": r.outcome.message,
            }
            for key, r in keyed
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        sys.stdout.write(_table(keyed, width=output_width()))
    sys.stdout.flush()
    progress.summary([r for _, r in keyed], hosts=len({key.host for key, _ in keyed}))
    return EXIT_OK if all(r.outcome.state.name == "OK" for _, r in keyed) else EXIT_FAILED


async def _run(
    targets: Sequence[CheckTarget],
    *,
    repo_root: Path,
    key_dir: Path | None,
    max_output: int,
    concurrency: int,
    on_result: Callable[[CheckRun], None],
) -> list[CheckRun]:
    """Run the targets once; the SSH stack is imported only when a host needs it."""
    from agentless.local import LocalTransport
    from agentless.transport import Transport, TransportRouter

    ssh: Transport
    if any(t.host.transport == "ssh" for t in targets):
        from agentless.ssh import SshSettings, SshTransport

        settings = SshSettings(base_dir=repo_root, key_dir=key_dir)
        ssh = SshTransport(settings, max_output=max_output)
    else:
        ssh = LocalTransport(max_output=max_output)
    transport = TransportRouter(ssh=ssh, local=LocalTransport(max_output=max_output))
    try:
        return await run_checks(
            targets, transport=transport, concurrency=concurrency, on_result=on_result
        )
    finally:
        await transport.aclose()


def _masked(run: CheckRun, masker: Masker) -> CheckRun:
    if not masker.patterns:
        return run
    outcome = dataclasses.replace(run.outcome, message=masker.apply(run.outcome.message))
    return dataclasses.replace(run, outcome=outcome)


def _table(rows: Sequence[tuple[CheckKey, CheckRun]], *, width: int | None) -> str:
    header = ("MAP", "COMPONENT", "HOST", "CHECK", "STATE", "DURATION", "MESSAGE")
    lines: list[tuple[str, ...]] = []
    for key, r in rows:
        message = one_line(" ".join(r.outcome.message.split()))
        duration = f"{r.duration_s * 1000:.0f}ms" if r.duration_s < 10 else f"{r.duration_s:.1f}s"
        names = (key.map, key.component, key.host, key.check)
        lines.append((*(one_line(n) for n in names), r.outcome.state.name, duration, message))
    return render_table(header, lines, width=width)
