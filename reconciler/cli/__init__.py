"""The ``opsmap`` command. Subcommands import their modules lazily, so start-up stays fast.

Conventions every subcommand shares: ``--version``; ``-q`` / ``-v`` (fewer or more log
lines on stderr, and for ``check`` no progress or summary); a mistyped option or
subcommand gets that subcommand's usage, the error and a did-you-mean, exit 2.
"""

from __future__ import annotations

import argparse
import difflib
import gc
import importlib
import logging
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from reconciler.inert import for_log, install_inert_logging
from reconciler.version import version

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
    "schema": ("reconciler.cli.schema", "print the JSON Schema of a map repo file kind"),
    "completion": ("reconciler.cli.completion", "print a shell completion script (shtab)"),
}
_INVALID_CHOICE = re.compile(r"invalid choice: '(?P<given>[^']*)' \(choose from (?P<choices>.*)\)")
_UNRECOGNIZED = "unrecognized arguments: "


class OpsmapParser(argparse.ArgumentParser):
    """An argument parser whose errors suggest the closest option, choice or subcommand.

    (``suggest_on_error`` arrived in Python 3.14; this is the same, by :mod:`difflib`.)
    ``commands`` holds the subcommands' parsers, by name.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: dict[str, OpsmapParser] = {}

    def suggestion(self, message: str) -> str | None:
        """What the user probably meant, for the error ``message``; None if nothing is close."""
        if message.startswith(_UNRECOGNIZED):
            given = message.removeprefix(_UNRECOGNIZED).split()[0].split("=", 1)[0]
            options = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
            close = difflib.get_close_matches(given, options, n=1, cutoff=0.7)
        else:
            match = _INVALID_CHOICE.search(message)
            if match is None:
                return None
            given = match["given"]
            choices = re.findall(r"'([^']*)'", match["choices"])
            close = difflib.get_close_matches(given, choices, n=1, cutoff=0.5)
        return close[0] if close else None

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        line = f"{self.prog}: error: {for_log(message)}"
        suggestion = self.suggestion(message)
        if suggestion is not None:
            line += f"; did you mean '{for_log(suggestion)}'?"
        self.exit(EXIT_USAGE, line + "\n")


def build_parser(chosen: str | None = None) -> OpsmapParser:
    """The parser; only the ``chosen`` subcommand's module is imported for its arguments.

    With ``chosen`` None every module is imported (for documentation, completion, tests).
    """
    parser = OpsmapParser(
        prog="opsmap",
        description="GitOps reconciler for operations maps: checks and actions over SSH.",
    )
    parser.add_argument("--version", action="version", version=f"opsmap {version()}")
    _add_verbosity(parser)
    # not required here: parse() says so, after a mistyped option had its did-you-mean
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OpsmapParser)
    for name, (module, help_text) in SUBCOMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        parser.commands[name] = command
        if chosen is None or name == chosen:
            importlib.import_module(module).add_arguments(command)
            _add_verbosity(command)
        command.set_defaults(module=module)
    return parser


def _add_verbosity(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: a subcommand's own -v must not reset the one given before it to 0; its
    # own dest: `policy can -v` (every binding) is another flag
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-v", "--verbose", action="count", dest="log_more", default=argparse.SUPPRESS,
        help="more log lines on stderr (-vv: debug)",
    )  # fmt: skip
    group.add_argument(
        "-q", "--quiet", action="count", dest="log_less", default=argparse.SUPPRESS,
        help="errors only on stderr (no progress or summary)",
    )  # fmt: skip


def verbosity(args: argparse.Namespace) -> int:
    """``-v`` counts up, ``-q`` down: 0 by default."""
    return int(getattr(args, "log_more", 0)) - int(getattr(args, "log_less", 0))


def _chain(parser: OpsmapParser, arguments: Sequence[str]) -> list[argparse.ArgumentParser]:
    """The parsers ``arguments`` go through: ``opsmap``, its subcommand, and so on down
    (``policy`` then ``can``), following the words that name a subcommand."""
    chain: list[argparse.ArgumentParser] = [parser]
    words = iter(a for a in arguments if not a.startswith("-"))
    while True:
        below = next(
            (a.choices for a in chain[-1]._actions if isinstance(a, argparse._SubParsersAction)),
            None,
        )
        word = next(words, None) if below else None
        if below is None or word not in below:
            return chain
        chain.append(below[word])


def _unknown_option(
    chain: Sequence[argparse.ArgumentParser], arguments: Sequence[str]
) -> str | None:
    """The first ``--option`` in ``arguments`` that no parser of ``chain`` knows, even as
    an abbreviation; found before parsing, so that a mistyped option is named rather
    than the required one it was meant to be (``--bse`` for ``--base``)."""
    known = [o for p in chain for a in p._actions for o in a.option_strings]
    for argument in arguments:
        if argument == "--":
            return None
        name = argument.split("=", 1)[0]
        if name.startswith("--") and not any(o.startswith(name) for o in known):
            return argument
    return None


def parse(parser: OpsmapParser, arguments: Sequence[str]) -> argparse.Namespace:
    """``arguments`` parsed; an unknown one is the subcommand's error, with its usage."""
    chain = _chain(parser, arguments)
    unknown = _unknown_option(chain, arguments)
    if unknown is not None:
        chain[-1].error(_UNRECOGNIZED + unknown)
    args, extras = parser.parse_known_args(arguments)
    if extras:
        chain[-1].error(_UNRECOGNIZED + " ".join(extras))
    if args.command is None:
        parser.error("the following arguments are required: COMMAND")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``opsmap`` console script; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in arguments if not a.startswith("-")), "")
    args = parse(build_parser(chosen), arguments)
    install_inert_logging()  # whatever handlers a command sets up, one record is one inert line
    from reconciler.cli.logs import setup_logging

    level = logging.WARNING - 10 * verbosity(args)
    setup_logging(min(max(level, logging.DEBUG), logging.ERROR), prefix="opsmap", force=False)
    if args.command == "check" and verbosity(args) <= 0:
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
