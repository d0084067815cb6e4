"""The :class:`~reconciler.statuspage.pagesource.PageSource` of a running reconciler.

Reads the loop's live state on the loop's own thread (the page's handlers run there):
the typed snapshot, the applied repo and who may view what (computed once per revision), the
audit records kept since the service started, and the journal's newest requests as the
request pipeline last read them (off the loop where the store blocks: never a read here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from reconciler.loop.reconciler import Reconciler
from reconciler.loop.view import Snapshot
from reconciler.loop.viewers import Target
from reconciler.policy.visibility import Visibility
from reconciler.repo.loader import MapRepo
from reconciler.statuspage.pagesource import AuditHistory, HistoryItem
from reconciler.store.protocol import JournalEntry


class LoopPageSource:
    """What the page shows of ``reconciler``; ``history`` is fed by the audit log."""

    def __init__(
        self,
        reconciler: Reconciler,
        *,
        history: AuditHistory,
        recent: Callable[[int], Sequence[JournalEntry]],
        snapshot: Callable[[], Snapshot],
        visibility: Callable[[], Visibility],
        branch: Callable[[], str] = lambda: "main",
    ):
        self._reconciler = reconciler
        self._snapshot = snapshot
        self._visibility = visibility
        self._branch = branch
        self._history = history
        self._recent = recent

    def snapshot(self) -> Snapshot:
        """The HTTP endpoint's shared snapshot (:meth:`reconciler.server.http.Snapshots.current`:
        reused while fresh, so that many viewers refetching at once build it once)."""
        return self._snapshot()

    def branch(self) -> str:
        return self._branch()

    def repo(self) -> MapRepo | None:
        return self._reconciler.repo

    def visibility(self) -> Visibility:
        """The applied revision's, as the event feed computed it for it."""
        return self._visibility()

    def history(self) -> Sequence[HistoryItem]:
        return self._history.items()

    def recent_requests(self, limit: int) -> Sequence[JournalEntry]:
        return self._recent(limit)

    def request_target(self, path: str) -> Target | None:
        return self._history.target(path)
