"""The requests view's document (``/api/v1/requests``): the journal's newest requests.

Who asked and who approved (verified signatures or claims), the decision and the rule,
each host's outcome, and links to the commits. What a request targets comes from its
audit records (kept in memory since the service started,
:meth:`~reconciler.statuspage.pagesource.AuditHistory.target`); a viewer limited by the
policies sees only the requests whose target it sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from reconciler.loop.view import iso
from reconciler.loop.viewers import RequestTarget
from reconciler.statuspage.access import Access
from reconciler.statuspage.asking import Asking
from reconciler.statuspage.documents import ViewerDoc, viewer_doc
from reconciler.statuspage.pagesource import now_iso
from reconciler.store.protocol import JournalEntry

REQUESTS_SHOWN = 50


class HostOutcome(TypedDict):
    host: str
    result: str
    detail: str | None


class RequestDoc(TypedDict):
    path: str
    commit: str
    commit_url: str | None
    map: str | None
    component: str | None
    action: str | None
    requester: str | None
    requester_verified: bool
    approver: str | None
    approver_verified: bool
    verified: bool
    state: str
    """``running``, ``succeeded``, ``failed``, ``unknown`` or ``denied``."""
    decision: str
    rule: str
    hosts: list[HostOutcome]
    created_at: str | None
    finished_at: str | None


class RequestsDoc(TypedDict):
    generated_at: str
    viewer: ViewerDoc
    requests: list[RequestDoc]


def _hosts(outcome: object) -> list[HostOutcome]:
    results = outcome.get("results") if isinstance(outcome, dict) else None
    if not isinstance(results, dict):
        return []
    hosts: list[HostOutcome] = []
    for host, result in results.items():
        if isinstance(result, dict):
            state = result.get("result") or result.get("state") or result.get("status")
            detail = result.get("reason") or result.get("error")
            hosts.append(
                {
                    "host": str(host),
                    "result": str(state) if state is not None else "?",
                    "detail": str(detail) if detail is not None else None,
                }
            )
        else:
            hosts.append({"host": str(host), "result": str(result), "detail": None})
    return hosts


def _verified(identity: object, role: str | None = None) -> bool:
    if not isinstance(identity, dict):
        return False
    if role is None:
        return identity.get("verified") is True
    person = identity.get(role)
    return isinstance(person, dict) and person.get("verified") is True


def requests_doc(
    entries: Sequence[JournalEntry],
    target_of: RequestTarget,
    *,
    access: Access,
    asking: Asking,
) -> RequestsDoc:
    """The newest requests; a filtered viewer's, only those whose target it sees
    (:meth:`~reconciler.policy.visibility.Sight.target`; not known: not seen)."""
    docs: list[RequestDoc] = []
    for entry in entries[:REQUESTS_SHOWN]:
        target = target_of(entry.path)
        if target is None:
            if access.filtered:
                continue
        elif not access.may_view_target(target.map, target.component):
            continue
        docs.append(
            {
                "path": entry.path,
                "commit": entry.commit,
                "commit_url": asking.commit_url(entry.commit),
                "map": target.map if target else None,
                "component": target.component if target else None,
                "action": target.action if target else None,
                "requester": entry.requester,
                "requester_verified": _verified(entry.identity, "requester"),
                "approver": entry.approver,
                "approver_verified": _verified(entry.identity, "approver"),
                "verified": _verified(entry.identity),
                "state": entry.state,
                "decision": "deny" if entry.state == "denied" else "allow",
                "rule": entry.rule,
                "hosts": _hosts(entry.outcome),
                "created_at": iso(entry.created_at),
                "finished_at": iso(entry.finished_at),
            }
        )
    return {"generated_at": now_iso(), "viewer": viewer_doc(access), "requests": docs}
