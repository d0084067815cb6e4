"""The ``opsmap`` command. Subcommands import their modules lazily, so start-up stays fast."""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import sys
from collections.abc import Sequence

from reconciler.inert import for_log, install_inert_logging

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

SUBCOMMANDS = {
    "validate": ("reconciler.cli.validate", "check a map repo: schemas, references, dependencies"),
    "check": ("reconciler.cli.check", "run every selected check once and print the results"),
    "policy": ("reconciler.cli.policy", "ask the policy engine who may do what, and why"),
    "audit": ("reconciler.cli.audit", "list the audit records in git notes, or verify their chain"),
    "request": ("reconciler.cli.request", "ask for an action: write a request file (--branch)"),
    "plan": ("reconciler.cli.plan", "what a pull request changes: maps, hosts, rights, requests"),
    "graph": ("reconciler.cli.graph", "a map as a Mermaid graph, coloured by a running reconciler"),
    "run": (
        "reconciler.cli.run",
        "run the reconciler: follow the map repo, run checks, serve metrics",
    ),
}


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the ``chosen`` subcommand's module is imported for its arguments.

    With ``chosen`` None every module is imported (for documentation and tests).
    """
    parser = argparse.ArgumentParser(
        prog="opsmap",
        description="GitOps reconciler for operations maps: checks and actions over SSH.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if chosen is None or name == chosen:
            importlib.import_module(module).add_arguments(command)
        command.set_defaults(module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``opsmap`` console script; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in arguments if not a.startswith("-")), "")
    args = build_parser(chosen).parse_args(arguments)
    install_inert_logging()  # whatever handlers a command sets up, one record is one inert line
    from reconciler.cli.logs import setup_logging

    setup_logging(logging.WARNING, prefix="opsmap", force=False)
    if args.command == "check":
        logging.getLogger("agentless").setLevel(logging.ERROR)  # the table says it all
    if args.command != "run":
        # Short-lived commands build large acyclic structures (parsed YAML): the cyclic
        # collector would rescan them again and again for nothing.
        gc.disable()
    try:
        code: int = importlib.import_module(args.module).run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return EXIT_FAILED
    return code


def usage_error(message: str) -> int:
    print(f"opsmap: error: {for_log(message)}", file=sys.stderr)
    return EXIT_USAGE
