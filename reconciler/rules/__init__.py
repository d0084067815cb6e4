"""Checks beyond the schemas, each a function from a loaded repo to findings."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator

from reconciler.findings import Finding, Severity
from reconciler.repo.loader import MapRepo
from reconciler.rules import files, maps, references, settings
from reconciler.rules.files import PathInfo, Probe, working_tree_probe

Rule = Callable[[MapRepo], Iterable[Finding]]

RULES: tuple[Rule, ...] = (
    maps.duplicate_names,
    maps.dependencies,
    maps.host_selectors,
    maps.completion_checks,
    maps.scheduled_check_count,
    references.map_permissions,
    references.policy_bindings,
    references.groups,
    references.requests,
    references.inventory_hosts,
    references.signers,
    settings.ignored_settings,
)


HISTORY = "history-request"
"""The code of a finding about a request that is history (see :func:`check_repo`)."""


def check_repo(
    repo: MapRepo,
    *,
    strict: bool = False,
    probe: Probe | None = None,
    history: Collection[str] = (),
) -> list[Finding]:
    """Every finding about ``repo`` (load errors and rules), sorted by place.

    With ``strict``, warnings are errors. ``probe`` tells what the paths the inventory
    names are in the tree ``repo`` was read from (see :mod:`reconciler.rules.files`).

    ``history`` names (as findings show them) the request files that were merged before
    the change under review: they ran, or were denied, or were skipped, and are never run
    again. An error in one of them (a component renamed since) is a warning that says so,
    with the code :data:`HISTORY`, and stays one under ``strict``: the change under
    review did not write it, and nothing will act on it. Errors in the other request
    files, the ones the change adds, stay errors.
    """
    found: Iterator[Finding] = (f for rule in RULES for f in rule(repo))
    findings = [*repo.findings, *found, *files.inventory_files(repo, probe)]
    if history:
        findings = [_as_history(f) if f.location.file in history else f for f in findings]
    if strict:
        findings = [
            f.as_error() if f.severity is Severity.WARNING and f.code != HISTORY else f
            for f in findings
        ]
    return sorted(findings, key=Finding.sort_key)


def _as_history(finding: Finding) -> Finding:
    if finding.severity is not Severity.ERROR:
        return finding
    message = (
        f"{finding.message} [{finding.code}]; this request was merged before the change "
        f"under review, so it is history and will not run again: delete the file to prune it"
    )
    return Finding(finding.location, Severity.WARNING, HISTORY, message)


__all__ = [
    "HISTORY",
    "RULES",
    "PathInfo",
    "Probe",
    "blocking_errors",
    "check_repo",
    "working_tree_probe",
]


def blocking_errors(findings: Iterable[Finding]) -> list[Finding]:
    """Errors that make a revision unusable: those outside ``requests/``.

    A broken request file is judged on its own (denied, and audited with the reason); it
    must not stop map changes from applying, nor other requests from running.
    """
    return [
        f
        for f in findings
        if f.severity is Severity.ERROR and not f.location.file.startswith("requests/")
    ]
