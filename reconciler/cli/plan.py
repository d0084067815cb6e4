"""``opsmap plan --base REF``: what a pull request changes, as Markdown or JSON.

Exit 0 with the plan on stdout; 1 when head does not validate; 2 for a path that is not a
git repo or an unknown ref. When there is no plan, ``--format markdown`` still writes a
report in its place (the findings, or the reason, made inert, under the same marker), so
CI posts what ``opsmap plan`` wrote, whatever its status, and never pastes raw output;
``--format json`` writes the findings as ``opsmap validate --format json`` does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reconciler.cli import EXIT_FAILED, EXIT_OK, usage_error
from reconciler.findings import Severity, format_json, format_text
from reconciler.inert import for_log


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base", required=True, metavar="REF", help="the revision the PR goes into"
    )
    parser.add_argument(
        "--head",
        default="HEAD",
        metavar="REF",
        help="the PR's revision (default HEAD; uncommitted changes are not read)",
    )
    parser.add_argument(
        "--repo", type=Path, default=Path("."), metavar="PATH", help="the map repo (default .)"
    )
    parser.add_argument("--format", choices=("markdown", "json"), default="markdown")


def run(args: argparse.Namespace) -> int:
    from reconciler.plan import InvalidHead, PlanError, make_plan, render_json, render_markdown
    from reconciler.plan.render import render_error_markdown, render_findings_markdown

    try:
        plan = make_plan(args.repo, base=args.base, head=args.head)
    except InvalidHead as exc:
        findings = exc.findings
        if args.format == "json":
            sys.stdout.write(format_json(findings))
        else:
            sys.stdout.write(render_findings_markdown(findings, head=args.head))
            sys.stderr.write(format_text(findings))
            errors = sum(f.severity is Severity.ERROR for f in findings)
            print(
                f"opsmap: invalid: {errors} error(s), {len(findings) - errors} warning(s)",
                file=sys.stderr,
            )
        print(f"opsmap: no plan: {for_log(args.head)} does not validate", file=sys.stderr)
        return EXIT_FAILED
    except PlanError as exc:
        if args.format == "markdown":
            sys.stdout.write(render_error_markdown(str(exc)))
        return usage_error(str(exc))
    render = render_json if args.format == "json" else render_markdown
    sys.stdout.write(render(plan))
    return EXIT_OK
