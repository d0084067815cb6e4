"""The plan of a pull request: everything that changes from base to head, in one value."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.findings import Finding, Severity, errors
from reconciler.plan.graph import CHANGE_CLASSES, mermaid
from reconciler.plan.inventory import HostChange, SelectionChange, diff_hosts, diff_selections
from reconciler.plan.maps import MapChange, diff_maps
from reconciler.plan.policychanges import BindingChange, GroupChange, diff_bindings, diff_groups
from reconciler.plan.requests import RequestPlan, plan_requests
from reconciler.plan.revisions import LocalRepo, PlanError, Revision, load_revisions
from reconciler.plan.rights import RightsDiff, diff_rights
from reconciler.rules import check_repo

FORMAT_VERSION = 1


class InvalidHead(PlanError):
    """Head does not validate: no plan; ``findings`` says why, as ``opsmap validate`` would."""

    def __init__(self, findings: list[Finding]) -> None:
        super().__init__(f"head is invalid: {len(errors(findings))} error(s)")
        self.findings = findings


@dataclass(frozen=True, slots=True)
class Plan:
    base: Revision
    head: Revision
    warnings: tuple[Finding, ...]
    base_errors: int
    maps: tuple[MapChange, ...]
    groups: tuple[GroupChange, ...]
    bindings: tuple[BindingChange, ...]
    hosts: tuple[HostChange, ...]
    selections: tuple[SelectionChange, ...]
    rights: RightsDiff
    requests: tuple[RequestPlan, ...]
    requests_modified: tuple[str, ...]
    graphs: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        """Everything in the plan; the markdown is rendered from this same document."""
        maps = [m.to_json() for m in self.maps]
        verdicts = [r.verdict for r in self.requests]
        return {
            "format": FORMAT_VERSION,
            "base": {"ref": self.base.ref, "sha": self.base.sha},
            "head": {"ref": self.head.ref, "sha": self.head.sha},
            "valid": True,
            "warnings": [f.to_json() for f in self.warnings],
            "base_errors": self.base_errors,
            "summary": {
                "maps_added": sum(m.change == "added" for m in self.maps),
                "maps_removed": sum(m.change == "removed" for m in self.maps),
                "maps_changed": sum(m.change == "changed" for m in self.maps),
                "rights_gained": self.rights.gained_count,
                "rights_lost": self.rights.lost_count,
                "hosts_changed": len(self.hosts),
                "selections_changed": len(self.selections),
                "requests_added": len(self.requests),
                "requests_authorized": verdicts.count("authorized"),
                "requests_needing_approval": verdicts.count("authorized once approved"),
                "requests_denied": verdicts.count("denied"),
            },
            "maps": maps,
            "policies": {
                "groups": [g.to_json() for g in self.groups],
                "bindings": [b.to_json() for b in self.bindings],
            },
            "inventory": {
                "hosts": [h.to_json() for h in self.hosts],
                "selections": [s.to_json() for s in self.selections],
            },
            "rights": self.rights.to_json(),
            "requests": {
                "added": [r.to_json() for r in self.requests],
                "modified": list(self.requests_modified),
            },
            "graphs": dict(self.graphs),
        }


def make_plan(repo_path: Path, *, base: str, head: str = "HEAD") -> Plan:
    """The plan of ``base..head`` of the repo at ``repo_path``.

    Raises :class:`InvalidHead` when head has errors, :class:`PlanError` for a path that
    is not a git repo or a ref that names no commit.
    """
    local = LocalRepo(repo_path)
    old, new = load_revisions(local, base, head)
    # the requests base has are history: the pull request did not write them
    history = {e.path for e in old.tree if e.kind == "request"}
    findings = check_repo(new.repo, probe=local.probe(new.sha), history=history)
    if errors(findings):
        raise InvalidHead(findings)
    maps = diff_maps(old.repo, new.repo)
    requests, modified = plan_requests(
        old.repo,
        new.repo,
        requester_of=lambda path: local.added_by(path, base=old.sha, head=new.sha),
    )
    return Plan(
        base=old,
        head=new,
        warnings=tuple(f for f in findings if f.severity is Severity.WARNING),
        base_errors=len(old.repo.findings),
        maps=tuple(maps),
        groups=tuple(diff_groups(old.repo, new.repo)),
        bindings=tuple(diff_bindings(old.repo, new.repo)),
        hosts=tuple(diff_hosts(old.repo.hosts, new.repo.hosts)),
        selections=tuple(diff_selections(old.repo, new.repo)),
        rights=diff_rights(old.repo, new.repo),
        requests=tuple(requests),
        requests_modified=tuple(modified),
        graphs=_graphs(new, maps),
    )


def _graphs(head: Revision, maps: list[MapChange]) -> dict[str, str]:
    """The graph of each map the pull request adds or changes, its changes coloured."""
    graphs = {}
    for change in maps:
        map_ = head.repo.map(change.name)
        if map_ is None:
            continue
        classes = {c.id: c.change for c in change.components if c.change != "removed"}
        graphs[change.name] = mermaid(map_, classes=classes, palette=CHANGE_CLASSES)
    return graphs
