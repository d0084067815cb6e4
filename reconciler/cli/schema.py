"""``opsmap schema NAME``: one of the JSON Schemas of the map repo's files, on stdout.

The text is generated from the models, byte for byte what ``schemas/NAME.schema.json``
holds (CI fails when they drift), so an editor or a CI job can get the schema of the
OpsMap it runs without a checkout of this repository.
"""

from __future__ import annotations

import argparse
import sys

from reconciler.cli import EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reconciler.model.schemas import SCHEMAS

    parser.add_argument("name", choices=sorted(SCHEMAS), metavar="NAME", help=", ".join(SCHEMAS))


def run(args: argparse.Namespace) -> int:
    from reconciler.model.schemas import render

    sys.stdout.write(render(args.name))
    return EXIT_OK
