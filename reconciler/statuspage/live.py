"""The :class:`~reconciler.statuspage.source.PageSource` of a running reconciler.

Reads the loop's live state on the loop's own thread (the page's handlers run there):
the typed snapshot, the applied repo and its policies (computed once per revision), the
audit records kept since the service started, and the journal's newest requests (a
bounded read).
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.loop.reconciler import Reconciler
from reconciler.loop.view import Snapshot
from reconciler.policy.engine import PolicySet
from reconciler.repo.loader import MapRepo
from reconciler.statuspage.source import AuditHistory, HistoryItem
from reconciler.store.protocol import Journal, JournalEntry


class LoopPageSource:
    """What the page shows of ``reconciler``; ``history`` is fed by the audit log."""

    def __init__(self, reconciler: Reconciler, *, history: AuditHistory, journal: Journal):
        self._reconciler = reconciler
        self._history = history
        self._journal = journal
        self._policies: tuple[MapRepo, PolicySet] | None = None

    def snapshot(self) -> Snapshot:
        return self._reconciler.view()

    def repo(self) -> MapRepo | None:
        return self._reconciler.repo

    def policies(self) -> PolicySet | None:
        repo = self._reconciler.repo
        if repo is None:
            return None
        if self._policies is None or self._policies[0] is not repo:
            self._policies = (repo, PolicySet.from_repo(repo))
        return self._policies[1]

    def history(self) -> Sequence[HistoryItem]:
        return self._history.items()

    def recent_requests(self, limit: int) -> Sequence[JournalEntry]:
        return self._journal.recent(limit)
