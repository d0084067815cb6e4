"""``opsmap audit``: list the audit records in a repo's notes; ``opsmap audit verify``.

Records are read from ``refs/notes/opsmap`` of a clone that fetched it
(``git fetch origin refs/notes/opsmap:refs/notes/opsmap``), the bare remote, or the
reconciler's mirror. ``verify`` checks the hash chain and exits 1 naming the first
broken record; both exit 2 when the path is not a git repo or has no audit notes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reconciler.audit import (
    NOTES_REF,
    AuditError,
    AuditRecord,
    NotesReader,
    shown_json,
    verify_chain,
)
from reconciler.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, usage_error
from reconciler.cli.table import output_width, render_table
from reconciler.inert import for_log, one_line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "what",
        nargs="?",
        choices=["list", "verify"],
        default="list",
        help="list the records (default), or verify their hash chain: exit 1 on a break",
    )
    parser.add_argument(
        "--repo", type=Path, default=Path("."), metavar="PATH", help="a git repo (default: .)"
    )
    parser.add_argument("--commit", metavar="SHA", help="only the records attached to SHA")
    parser.add_argument("--format", choices=["table", "json"], default="table")
    parser.add_argument("--ref", default=NOTES_REF, metavar="REF", help=f"default: {NOTES_REF}")


def run(args: argparse.Namespace) -> int:
    if args.what == "verify" and args.commit is not None:
        return usage_error("verify checks the whole chain: --commit does not apply")
    if not args.ref.startswith("refs/notes/"):
        return usage_error(f"--ref {args.ref!r}: expected refs/notes/NAME")
    try:
        reader = NotesReader(args.repo, notes_ref=args.ref)
        return _verify(reader) if args.what == "verify" else _list(reader, args)
    except AuditError as exc:
        print(f"opsmap: error: {for_log(exc)}", file=sys.stderr)
        return EXIT_USAGE


def _verify(reader: NotesReader) -> int:
    notes = reader.read()
    if notes.bad_lines:
        print(f"opsmap: chain broken: {for_log(notes.bad_lines[0])}", file=sys.stderr)
        return EXIT_FAILED
    broken = verify_chain(notes.records)
    if broken is not None:
        print(f"opsmap: chain broken: {for_log(broken)}", file=sys.stderr)
        return EXIT_FAILED
    print(f"chain intact: {len(notes.records)} records")
    return EXIT_OK


def _list(reader: NotesReader, args: argparse.Namespace) -> int:
    notes = reader.read()
    for bad in notes.bad_lines:
        print(f"opsmap: warning: {for_log(bad)}", file=sys.stderr)
    records = [found.record for found in notes.records]
    if args.commit is not None:
        commit = reader.resolve_commit(args.commit)
        if commit is None:
            return usage_error(f"--commit {args.commit!r}: no such commit in {args.repo}")
        records = [r for r in records if r.commit == commit]
    if args.format == "json":
        sys.stdout.write(shown_json([r.to_json() for r in records], indent=2) + "\n")
    else:
        sys.stdout.write(_table(records))
    return EXIT_OK


def _table(records: Sequence[AuditRecord]) -> str:
    header = ("SEQ", "TIME", "ACTION", "ACTOR", "TARGET", "COMMIT", "SUMMARY")
    rows = []
    for r in records:
        summary = _one_line(summary_of(r))
        rows.append(
            (
                str(r.seq),
                _time(r.timestamp),
                r.action,
                actor_of(r),
                target_of(r),
                r.commit[:12],
                summary,
            )
        )
    shown = [tuple(one_line(cell) for cell in row) for row in rows]  # repo and host text
    return render_table(header, shown, width=output_width())


def actor_of(record: AuditRecord) -> str:
    """The actor, marked ``(unverified)`` when the record says it is a commit's claim."""
    identity = record.details.get("identity")
    claimed = isinstance(identity, dict) and identity.get("verified") is False
    return f"{record.actor} (unverified)" if claimed else record.actor


def target_of(record: AuditRecord) -> str:
    """``map/component/action``, else the request file, else the revision, else JSON."""
    t = record.target
    parts = [str(t[key]) for key in ("map", "component", "action") if t.get(key)]
    if parts:
        return "/".join(parts)
    if isinstance(t.get("request"), str):
        return str(t["request"])
    if isinstance(t.get("revision"), str):
        return f"revision {t['revision'][:12]}"
    return shown_json(t, sort_keys=True) if t else "-"


def summary_of(record: AuditRecord) -> str:
    """What happened, in a few words, from the record's details."""
    d: dict[str, Any] = record.details
    action = record.action
    if action == "component.status_changed":
        return f"{d.get('from') or 'none'} -> {d.get('to')}"
    if action == "revision.applied":
        return f"maps: {', '.join(map(str, d.get('maps') or [])) or 'none'}"
    if action == "revision.rejected":
        errors = d.get("errors") or []
        first = f": {errors[0]}" if errors else ""
        return f"{len(errors)} error(s){first}"
    if action.startswith("request."):
        decision = d.get("decision", action.removeprefix("request."))
        return f"{decision}: {d.get('rule', '')}".rstrip(": ")
    if action in ("action.succeeded", "action.failed"):
        result = action.removeprefix("action.")
        duration = d.get("duration_s")
        took = f" in {duration}s" if isinstance(duration, int | float) else ""
        reason = f": {d['reason']}" if d.get("reason") else ""
        return f"{result}{took}{reason}"
    for key in ("reason", "rule", "error"):
        if d.get(key):
            return str(d[key])
    return shown_json(d, sort_keys=True) if d else ""


def _time(timestamp: str) -> str:
    """``2026-11-22T10:15:00Z``: the timestamp to the second."""
    head, dot, rest = timestamp.partition(".")
    return f"{head}Z" if dot and rest.endswith("Z") else timestamp


def _one_line(text: str) -> str:
    return " ".join(text.split())
