"""The exceptions of :mod:`reconciler.audit`.

::

    AuditError              anything the audit trail could not do; ``str()`` is one line
    ├── AuditDeliveryError  notes could not be written or pushed: records stay pending,
    │                       delivery is tried again later
    ├── AuditStoreError     the outbox in the state database could not be used
    ├── AuditReadError      a repo's audit notes cannot be read (not a repo, no notes ref)
    └── AuditFormatError    a note line is not an audit record

Library exceptions (sqlite3's, git's own errors from
:mod:`reconciler.git.errors`) never pass through: they are translated here, with the
original kept as ``__cause__``, and remote URLs have their credentials masked.
"""

from __future__ import annotations


class AuditError(Exception):
    """The audit trail could not do what was asked."""


class AuditDeliveryError(AuditError):
    """Records could not be attached as notes or pushed (temporary: retry later)."""


class AuditStoreError(AuditError):
    """The outbox (SQLite) could not be read or written: disk full, state dir gone."""


class AuditReadError(AuditError):
    """Audit notes could not be read from a repository."""


class AuditFormatError(AuditError, ValueError):
    """A line of a note that is not an audit record."""
