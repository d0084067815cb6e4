"""SQLite's errors as the store's own: what is not a write to retry is a StoreError.

:meth:`~reconciler.store.writes.StateWrites.guard` makes a write that fails for a while
(disk full, I/O error, locked) a :class:`~reconciler.store.writes.StateWriteError`;
:func:`translated` makes anything else sqlite3 raises (a constraint, a malformed
database, a value it cannot bind) a :class:`~reconciler.store.protocol.StoreError`, the
error of that one call (and of its record), never sqlite3's own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from reconciler.store.protocol import StoreError


@contextmanager
def translated(doing: str) -> Iterator[None]:
    """Turns sqlite3's errors into :class:`StoreError` (a failed write is already a
    :class:`~reconciler.store.writes.StateWriteError` by then, and passes)."""
    try:
        yield
    except (sqlite3.Error, OverflowError, UnicodeError) as exc:
        raise StoreError(f"cannot {doing}: {exc}") from exc
