"""The component view's document (``/api/v1/maps/{map}/components/{component}``).

Every check on every host with its state, the component's actions with whether the viewer
may request each (and the rule), what to run or commit to ask for it, and the component's
recent history from the audit trail, linked to commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from reconciler.loop.view import CheckDoc, ComponentView, MapView
from reconciler.model.maps import Component
from reconciler.model.vocabulary import ALL_COMPONENTS
from reconciler.statuspage.access import Access
from reconciler.statuspage.asking import AskDoc, Asking
from reconciler.statuspage.documents import ViewerDoc, viewer_doc
from reconciler.statuspage.pagesource import HistoryItem, now_iso

HISTORY_SHOWN = 50


class ActionDoc(TypedDict):
    name: str
    label: str | None
    description: str | None
    is_async: bool
    confirmation_required: bool
    may: bool | None
    """Whether the viewer may request it; None when the viewer is not known."""
    rule: str | None
    """The rule that decided (None when the viewer is not known)."""
    request: AskDoc


class HistoryDoc(TypedDict):
    timestamp: str
    action: str
    actor: str
    summary: str
    request: str | None
    commit: str
    commit_url: str | None


class ComponentDoc(TypedDict):
    generated_at: str
    viewer: ViewerDoc
    map: str
    id: str
    name: str | None
    type: str | None
    description: str | None
    status: str
    impacted_by: list[str]
    dependencies: list[str]
    dependents: list[str]
    hosts: list[str]
    checks: list[CheckDoc]
    actions: list[ActionDoc]
    history: list[HistoryDoc]


def find_component(view: MapView, component_id: str, access: Access) -> ComponentView | None:
    """The component of ``view`` (as :func:`~.documents.find_map` gives it); None when there
    is none, or the viewer may not see it (the same answer)."""
    found = next((c for c in view.components if c.id == component_id), None)
    if found is None or not access.may_view(view.name, component_id):
        return None
    return found


def component_doc(
    view: MapView,
    component: ComponentView,
    model: Component | None,
    *,
    access: Access,
    asking: Asking,
    history: Sequence[HistoryItem],
) -> ComponentDoc:
    name = view.name

    def visible(ids: Sequence[str]) -> list[str]:
        return [i for i in ids if access.may_view(name, i)]

    dependents = [c.id for c in view.components if component.id in c.dependencies]
    actions: list[ActionDoc] = []
    for action in model.actions if model else []:
        decision = access.may_run(name, component.id, action.name)
        actions.append(
            {
                "name": action.name,
                "label": action.label,
                "description": action.description,
                "is_async": action.is_async,
                "confirmation_required": action.confirmation_required,
                "may": None if decision is None else decision.allowed,
                "rule": None if decision is None else decision.rule,
                "request": asking.ask(name, component.id, action.name),
            }
        )
    whole_map = access.may_view_target(name, ALL_COMPONENTS)
    mine = [
        h
        for h in reversed(history)
        if h.map == name
        and (h.component == component.id or (h.component == ALL_COMPONENTS and whole_map))
    ][:HISTORY_SHOWN]
    return {
        "generated_at": now_iso(),
        "viewer": viewer_doc(access),
        "map": name,
        "id": component.id,
        "name": component.name,
        "type": component.type,
        "description": model.description if model else None,
        "status": component.status,
        "impacted_by": visible(component.impacted_by),
        "dependencies": visible(component.dependencies),
        "dependents": visible(dependents),
        "hosts": sorted({c.host for c in component.checks}),
        "checks": [c.to_json() for c in component.checks],
        "actions": actions,
        "history": [
            {
                "timestamp": h.timestamp,
                "action": h.action,
                "actor": h.actor,
                "summary": h.summary,
                "request": h.request,
                "commit": h.commit,
                "commit_url": asking.commit_url(h.commit),
            }
            for h in mine
        ],
    }
