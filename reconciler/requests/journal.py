"""The request journal: at most once, even across restarts, crashes and force-pushes.

A request is known by the path of its file (``requests/…``): the same file merged again,
or rewritten by a force-push, is the same request and never runs twice. Its row is
written, and committed, **before** its action starts; a row still ``running`` when the
reconciler starts again is a request whose outcome is unknown (the process died during
it): it is marked ``unknown`` and reported, never run again by itself.

The journal is the state store's (:attr:`reconciler.store.protocol.StateStore.journal`,
the :class:`~reconciler.store.protocol.Journal` protocol). A write that fails (disk full,
I/O error, locked) raises :class:`~reconciler.store.writes.StateWriteError` and leaves the
journal as it was: a request whose ``running`` entry could not be written does not start.
"""

from __future__ import annotations

from reconciler.store.protocol import Journal, JournalEntry, RequestState

RequestJournal = Journal
"""What the request pipeline is given: any implementation of the journal's protocol."""

__all__ = ["Journal", "JournalEntry", "RequestJournal", "RequestState"]
