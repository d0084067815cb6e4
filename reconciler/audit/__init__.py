"""The audit trail: chained records, a durable outbox, and git notes on the commits.

Every decision and outcome becomes an :class:`AuditRecord` appended to the
:class:`AuditLog` (SQLite, committed before anything else happens), then delivered by a
:class:`NotesPublisher` as a line of the git note of the commit it concerns under
``refs/notes/opsmap``, pushed to the map repo's remote. :class:`NotesReader` reads them
back from any clone, and :func:`verify_chain` checks that none was edited, removed or
reordered.

Exceptions (see :mod:`reconciler.audit.errors`)::

    AuditError
    ├── AuditDeliveryError   retry later; the records stay pending
    ├── AuditStoreError      the outbox database failed
    ├── AuditReadError       a repo's notes cannot be read
    └── AuditFormatError     a note line is not a record
"""

from __future__ import annotations

from reconciler.audit.chain import ChainBreak, Located, verify_chain
from reconciler.audit.errors import (
    AuditDeliveryError,
    AuditError,
    AuditFormatError,
    AuditReadError,
    AuditStoreError,
)
from reconciler.audit.notes import NOTES_REF, NotesPublisher
from reconciler.audit.outbox import AuditLog
from reconciler.audit.reader import AuditNotes, BadLine, NotesReader
from reconciler.audit.record import (
    ACTIONS,
    GENESIS_HASH,
    AuditRecord,
    canonical_json,
    shown_json,
)

__all__ = [
    "ACTIONS",
    "GENESIS_HASH",
    "NOTES_REF",
    "AuditDeliveryError",
    "AuditError",
    "AuditFormatError",
    "AuditLog",
    "AuditNotes",
    "AuditReadError",
    "AuditRecord",
    "AuditStoreError",
    "BadLine",
    "ChainBreak",
    "Located",
    "NotesPublisher",
    "NotesReader",
    "canonical_json",
    "shown_json",
    "verify_chain",
]
