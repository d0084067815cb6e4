"""What the loop tells, and what it is told, across its seams; each given to
:class:`~reconciler.loop.reconciler.Reconciler` when it is made, each with a default that
does nothing, so that the loop runs alone (checks only) as well as in the service.

- :class:`LoopEvents`: what happens to revisions and components, as it happens (the
  service writes audit records and feeds new heads to the request processor);
- :class:`PhaseSource`: components an action is starting or stopping now;
- :class:`StatusExtras`: what the status document shows beside the loop's own state
  (audit backlog, requests).

Calls come from the event loop's thread, and must not block it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from reconciler.findings import Finding
from reconciler.loop.view import CheckView
from reconciler.model.status import ComponentStatus
from reconciler.repo.loader import MapRepo


class LoopEvents(Protocol):
    def revision_applied(self, sha: str, repo: MapRepo, *, resumed: bool) -> None:
        """``sha`` runs now; ``resumed``: it ran before a restart (nothing new)."""
        ...

    def revision_rejected(self, sha: str, problems: list[Finding]) -> None:
        """``sha`` was not applied: the last good revision keeps running."""
        ...

    def head_seen(self, sha: str) -> None:
        """The tracked branch is at ``sha`` (told once a revision is applied)."""
        ...

    def component_changed(self, map_name: str, component: str, old: str | None, new: str) -> None:
        """A component's status changed with one of its checks' hard state."""
        ...

    def check_changed(self, map_name: str, component: str, check: CheckView) -> None:
        """A check's state, hard state, attempt or flapping changed on one host."""
        ...


class NullEvents:
    """Events nobody listens to."""

    def revision_applied(self, sha: str, repo: MapRepo, *, resumed: bool) -> None:
        pass

    def revision_rejected(self, sha: str, problems: list[Finding]) -> None:
        pass

    def head_seen(self, sha: str) -> None:
        pass

    def component_changed(self, map_name: str, component: str, old: str | None, new: str) -> None:
        pass

    def check_changed(self, map_name: str, component: str, check: CheckView) -> None:
        pass


class PhaseSource(Protocol):
    def phases(self) -> Mapping[tuple[str, str], ComponentStatus]:
        """``(map, component)`` → ``starting``/``stopping`` while an action runs on it."""
        ...


class StatusExtras(Protocol):
    def snapshot_extra(self) -> dict[str, Any]:
        """Keys added to the status document (each must be JSON)."""
        ...


class NoPhases:
    """No action runs (the loop without the request pipeline)."""

    def phases(self) -> Mapping[tuple[str, str], ComponentStatus]:
        return {}


class NoExtras:
    def snapshot_extra(self) -> dict[str, Any]:
        return {}
