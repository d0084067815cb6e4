"""The :class:`~reconciler.statuspage.source.PageSource` of a running reconciler.

Reads the loop's live state on the loop's own thread (the page's handlers run there):
the typed snapshot, the applied repo and its policies (computed once per revision), the
audit records kept since the service started, and the journal's newest requests (a
bounded read).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from reconciler.loop.reconciler import Reconciler
from reconciler.loop.view import Snapshot
from reconciler.policy.engine import PolicySet
from reconciler.repo.loader import MapRepo
from reconciler.statuspage.source import AuditHistory, HistoryItem
from reconciler.store.protocol import Journal, JournalEntry

REUSE = 10
"""A snapshot that cost t to build is shown for 10 t (20 ms for a 2 ms one): the loop
spends at most a tenth of its time on the page's snapshots."""


class LoopPageSource:
    """What the page shows of ``reconciler``; ``history`` is fed by the audit log."""

    def __init__(
        self,
        reconciler: Reconciler,
        *,
        history: AuditHistory,
        journal: Journal,
        branch: str = "main",
    ):
        self._reconciler = reconciler
        self._branch = branch
        self._history = history
        self._journal = journal
        self._policies: tuple[MapRepo, PolicySet] | None = None
        self._last: tuple[float, float, Snapshot] | None = None
        """When the last snapshot was built, what that cost, the snapshot."""

    def snapshot(self) -> Snapshot:
        """The last snapshot while it is fresh: for :data:`REUSE` times what it cost to
        build, so that many viewers refetching at once build it once, and a large repo's
        snapshot does not take the loop over."""
        now = time.monotonic()
        last = self._last
        if last is not None and now - last[0] < REUSE * last[1]:
            return last[2]
        snapshot = self._reconciler.view()
        finished = time.monotonic()
        self._last = (finished, finished - now, snapshot)
        return snapshot

    def branch(self) -> str:
        return self._branch

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
