"""Rules on ``opsmap.yaml`` beyond its schema: settings the reconciler does not take."""

from __future__ import annotations

from collections.abc import Iterator

from reconciler.findings import Finding, Severity
from reconciler.repo.loader import MapRepo


def ignored_settings(repo: MapRepo) -> Iterator[Finding]:
    """``branch`` is accepted (older repos set it) but not followed: say so where it is."""
    loaded = repo.settings
    if loaded is None or loaded.model.branch is None:
        return
    yield Finding(
        loaded.doc.locate(("branch",)),
        Severity.WARNING,
        "setting-ignored",
        "branch is ignored: opsmap run follows the branch it is given (--branch, default the "
        "remote's default branch), since a repo cannot name the branch it is read from; "
        "remove this line",
    )
