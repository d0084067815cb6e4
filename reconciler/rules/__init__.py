"""Checks beyond the schemas, each a function from a loaded repo to findings."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

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


def check_repo(repo: MapRepo, *, strict: bool = False, probe: Probe | None = None) -> list[Finding]:
    """Every finding about ``repo`` (load errors and rules), sorted by place.

    With ``strict``, warnings are errors. ``probe`` tells what the paths the inventory
    names are in the tree ``repo`` was read from (see :mod:`reconciler.rules.files`).
    """
    found: Iterator[Finding] = (f for rule in RULES for f in rule(repo))
    findings = [*repo.findings, *found, *files.inventory_files(repo, probe)]
    if strict:
        findings = [f.as_error() if f.severity is Severity.WARNING else f for f in findings]
    return sorted(findings, key=Finding.sort_key)


__all__ = ["RULES", "PathInfo", "Probe", "blocking_errors", "check_repo", "working_tree_probe"]


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
