"""``opsmap validate``: the CI gate for a map repo or some of its files."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.cli import EXIT_FAILED, EXIT_OK, usage_error, verbosity
from reconciler.findings import Finding, Severity, format_github, format_json, format_text
from reconciler.inert import for_log
from reconciler.plan.history import HistoryError, request_history
from reconciler.repo.loader import (
    FOLDER_KINDS,
    SETTINGS_FILE,
    YAML_SUFFIXES,
    Kind,
    RepoFile,
    load_repo,
    local_file,
    read_tree,
)
from reconciler.rules import check_repo, working_tree_probe

FORMATTERS = {"text": format_text, "json": format_json, "github": format_github}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        default=["."],
        help="a map repo root (default .) or files in one; a file is read as what its "
        "folder says (maps/, policies/, inventory/, requests/), elsewhere as a map",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="treat warnings as errors (but a request that is history stays a warning)",
    )
    parser.add_argument(
        "--base",
        metavar="REF",
        help="the revision the change under review starts from (a pull request's target "
        "branch): its requests are history, and an error in one is a warning. Default: "
        "HEAD when the work tree differs from it, else HEAD's first parent",
    )
    parser.add_argument("--format", choices=sorted(FORMATTERS), default="text")


@dataclass
class Target:
    """A repo to load, and which of its files to report on."""

    root: Path | None
    whole: bool = False
    """Report on every file (the repo itself was named)."""
    named: dict[str, tuple[Path, Kind, str | None]] = field(default_factory=dict)
    """Files named on the command line, by the path shown for them: the path given, how to
    read it, and its path inside the repo (None outside one)."""


def run(args: argparse.Namespace) -> int:
    targets: dict[Path | None, Target] = {}
    for given in args.paths:
        path = Path(given)
        if not os.path.lexists(path):
            return usage_error(f"{for_log(given)}: no such file or directory")
        if path.is_dir():
            targets.setdefault(path.resolve(), Target(path.resolve())).whole = True
            continue
        if path.suffix not in YAML_SUFFIXES:
            return usage_error(f"{for_log(given)}: not a .yaml or .yml file: OpsMap reads no other")
        found, kind = locate_file(path)
        rel = os.path.relpath(os.path.abspath(path), found) if found is not None else None
        root = found.resolve() if found is not None else None
        target = targets.setdefault(root, Target(root))
        target.named[os.path.normpath(os.path.relpath(path))] = (path, kind, rel)
    findings: list[Finding] = []
    for target in targets.values():
        try:
            findings.extend(validate_target(target, strict=args.strict, base=args.base))
        except HistoryError as exc:
            return usage_error(str(exc))
    sys.stdout.write(FORMATTERS[args.format](findings))
    errors = sum(f.severity is Severity.ERROR for f in findings)
    if args.format == "text" and verbosity(args) >= 0:  # -q: the findings alone
        warnings = len(findings) - errors
        verdict = "invalid" if errors else "valid"
        print(f"opsmap: {verdict}: {errors} error(s), {warnings} warning(s)", file=sys.stderr)
    return EXIT_FAILED if errors else EXIT_OK


def validate_target(target: Target, *, strict: bool, base: str | None = None) -> list[Finding]:
    files: list[RepoFile] = []
    if target.root is not None:
        display = os.path.relpath(target.root)
        files = list(read_tree(target.root, display_root="" if display == "." else display))
    found = {os.path.normpath(f.shown) for f in files}
    for shown, (path, kind, rel) in target.named.items():
        if shown not in found:  # outside the repo's folders, or in one read_tree skips
            files.append(local_file(path, shown, kind, root=target.root, rel=rel))
    history: set[str] = set()
    if target.root is not None:
        merged = request_history(target.root, base=base)
        history = {f.shown for f in files if f.kind == "request" and f.path in merged}
    repo = load_repo(files, parallel=True)
    probe = working_tree_probe(target.root) if target.root is not None else None
    findings = check_repo(repo, strict=strict, probe=probe, history=history)
    if target.named and not target.whole:
        findings = [f for f in findings if os.path.normpath(f.location.file) in target.named]
    return findings


def locate_file(path: Path) -> tuple[Path | None, Kind]:
    """The repo root a file belongs to, and how to read it.

    A file under ``maps/``, ``policies/``, ``inventory/`` or ``requests/`` belongs to the
    folder's parent; ``opsmap.yaml`` to its own folder. Any other file is read as a map,
    in the repo of its own folder if that holds a ``maps/`` folder, else of the nearest
    folder above it that holds an ``opsmap.yaml`` or is the top of a git work tree with a
    ``maps/`` folder; otherwise on its own. The search stops at the top of a git work tree
    (a stray ``maps/`` in ``/tmp`` does not make every file below it part of a repo).
    """
    # Not resolved: a link in the repo is refused, unread, not taken for where it points.
    resolved = Path(os.path.abspath(path))
    if resolved.name == SETTINGS_FILE:
        return resolved.parent, "settings"
    for ancestor in resolved.parents:
        kind = FOLDER_KINDS.get(ancestor.name)
        if kind is not None:
            return ancestor.parent, kind
    if (resolved.parent / "maps").is_dir():  # a loose file at a repo's root
        return resolved.parent, "map"
    for ancestor in resolved.parents:
        top_of_work_tree = (ancestor / ".git").exists()
        if (ancestor / SETTINGS_FILE).is_file() or (
            top_of_work_tree and (ancestor / "maps").is_dir()
        ):
            return ancestor, "map"
        if top_of_work_tree:
            break
    return None, "map"
