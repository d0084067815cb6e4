"""``opsmap graph MAP``: a map as a Mermaid graph, coloured by a running reconciler."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reconciler.cli import EXIT_FAILED, EXIT_OK, usage_error
from reconciler.findings import format_text
from reconciler.inert import for_log, for_terminal
from reconciler.model.depgraph import capped
from reconciler.plan.graph import (
    DEFAULT_TIMEOUT_S,
    GraphError,
    fetch_statuses,
    mermaid,
    status_classes,
)
from reconciler.repo.loader import load_repo, read_tree


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("map", metavar="MAP", help="the map's name")
    parser.add_argument(
        "--repo", type=Path, default=Path("."), metavar="PATH", help="the map repo (default .)"
    )
    parser.add_argument(
        "--status",
        metavar="URL",
        help="a running reconciler (e.g. http://127.0.0.1:9736): colour each component "
        "by its status from URL/api/v1/status",
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
        help=f"for --status (default {DEFAULT_TIMEOUT_S:g})",
    )  # fmt: skip
    parser.add_argument("--format", choices=("mermaid",), default="mermaid")


def run(args: argparse.Namespace) -> int:
    if not args.repo.is_dir():
        return usage_error(f"{args.repo}: not a directory")
    repo = load_repo(read_tree(args.repo))
    map_ = repo.map(args.map)
    if map_ is None:
        if args.map in repo.unloaded_maps:
            sys.stderr.write(format_text(repo.findings))
            print(f"opsmap: map '{args.map}' has errors: fix them first", file=sys.stderr)
            return EXIT_FAILED
        known = capped(sorted(m.model.name for m in repo.maps)) or "none"
        return usage_error(f"no map named '{args.map}' in {args.repo} (maps: {known})")
    classes: dict[str, str] = {}
    if args.status:
        try:
            classes = status_classes(
                map_, fetch_statuses(args.status, map_.name, timeout_s=args.timeout)
            )
        except GraphError as exc:
            print(f"opsmap: error: {for_log(exc)}", file=sys.stderr)
            return EXIT_FAILED
    sys.stdout.write(for_terminal(mermaid(map_, classes=classes)))
    return EXIT_OK
