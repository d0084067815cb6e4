"""Reading the map repo a command works on, refusing it with its errors when invalid."""

from __future__ import annotations

import sys
from pathlib import Path

from reconciler.cli import usage_error
from reconciler.findings import errors, format_text
from reconciler.repo.loader import MapRepo, load_repo, read_tree
from reconciler.rules import check_repo, working_tree_probe


def load_valid_repo(root: Path) -> MapRepo | None:
    """The repo at ``root``; None (after saying why on stderr) if it is missing or invalid."""
    if not root.is_dir():
        usage_error(f"{root}: not a directory")
        return None
    repo = load_repo(read_tree(root))
    problems = errors(check_repo(repo, probe=working_tree_probe(root)))
    if problems:
        sys.stderr.write(format_text(problems))
        print(f"opsmap: {root} is invalid: fix the errors above first", file=sys.stderr)
        return None
    return repo
