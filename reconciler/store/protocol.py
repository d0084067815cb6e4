"""What the rest of OpsMap asks of the state store, whatever the database behind it.

:class:`StateStore` is the state directory's database: the last result of every check,
meta values and cursors, and two parts with a protocol of their own, the request
:class:`Journal` and the audit :class:`Outbox`. Nothing here names a database module:
:mod:`reconciler.store.sqlite` is the embedded one, :mod:`reconciler.store.postgres` the
one that replicas share; :mod:`reconciler.store.calls` is how the event loop calls either.

Errors are the store's own. A write that fails for a while (disk full, I/O error, locked)
is a :class:`~reconciler.store.writes.StateWriteError`, retried; any other failure of the
database is a :class:`StoreError`; a store that cannot be opened at all (not OpsMap's, in
use, written by a newer OpsMap) is a :class:`StateError`. A StoreError from a write is
that call's record's: callers fail that record (a request denied, a check row left out of
a save, an audit record replaced by a stand-in), never the process.

Text crosses the edge in one encoding, the same in both stores
(:mod:`reconciler.store.text`): :func:`encode_check_row`, :func:`journal_row` and their
inverses apply it, so any str and any bytes read with ``surrogateescape`` round-trip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from reconciler.store.text import (
    from_json,
    from_stored,
    optional_from_stored,
    to_json,
    to_stored,
)
from reconciler.store.writes import StateWrites

RequestState = Literal["denied", "running", "succeeded", "failed", "unknown"]

CheckRow = tuple[Any, ...]
"""One check's stored status: map, component, check, host, state, state type, hard state,
attempt, message, value, last run, duration, last hard change (wall-clock epochs), flapping
(0/1), the history as a list, and whether the host was reached on the check's last run
(0/1: replicas show the hosts that others check from it)."""

CHECK_COLUMNS = (
    "map", "component", "check_name", "host", "state", "state_type", "hard_state", "attempt",
    "message", "value", "last_run", "duration", "last_hard_change", "flapping", "history",
    "reachable",
)  # fmt: skip
"""The ``check_status`` table's columns, in :data:`CheckRow`'s order (both stores)."""
_HISTORY = CHECK_COLUMNS.index("history")
_TEXT_FIELDS = tuple(
    CHECK_COLUMNS.index(c)
    for c in ("map", "component", "check_name", "host", "state_type", "message")
)

CheckId = tuple[str, str, str, str]
"""A check row's key: map, component, check, host."""

JsonObject = dict[str, Any]


class StateError(Exception):
    """The state directory cannot be used: not OpsMap's, in use, unwritable, corrupt,
    or written by a newer OpsMap."""


class StoreError(Exception):
    """The database failed otherwise than a write to retry (a read, a malformed row)."""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    path: str
    commit: str
    requester: str | None
    approver: str | None
    state: RequestState
    rule: str
    created_at: float
    finished_at: float | None
    outcome: dict[str, object] | None
    identity: dict[str, object] | None = None
    """Who asked and approved, verified or not (:meth:`Attribution.to_json`)."""


@dataclass(frozen=True, slots=True)
class Chained:
    """An outbox record once chained: its hash (the next record's ``prev_hash``) and JSON."""

    hash: str
    record: JsonObject


class Journal(Protocol):
    """The request journal: at most once, even across restarts, crashes and force-pushes.

    A request is known by the path of its file (``requests/…``): the same file merged
    again, or rewritten by a force-push, is the same request and never runs twice. Its
    entry is written, and committed, **before** its action starts; an entry still
    ``running`` when the reconciler starts again is a request whose outcome is unknown (the
    process died during it): it is marked ``unknown`` and reported, never run again by
    itself. Each write is durable when it returns; a failed one (disk full, I/O error,
    locked) raises :class:`~reconciler.store.writes.StateWriteError` and leaves the journal
    as it was: a request whose ``running`` entry could not be written does not start."""

    def recent(self, limit: int) -> list[JournalEntry]:
        """The ``limit`` newest requests, newest first (a bounded read)."""
        ...

    def count(self) -> int:
        """How many requests the journal holds."""
        ...

    def get(self, path: str) -> JournalEntry | None: ...

    def entries(self) -> list[JournalEntry]:
        """Every request, oldest first."""
        ...

    def denied(
        self,
        path: str,
        commit: str,
        requester: str | None,
        approver: str | None,
        rule: str,
        identity: dict[str, object] | None = None,
    ) -> None: ...

    def started(
        self,
        path: str,
        commit: str,
        requester: str | None,
        approver: str | None,
        rule: str,
        identity: dict[str, object] | None = None,
    ) -> None:
        """Record that the request's action is about to run (durable before it does)."""
        ...

    def finished(self, path: str, state: RequestState, outcome: dict[str, object]) -> None: ...

    def recover(
        self, on_unknown: Callable[[JournalEntry], None] | None = None
    ) -> list[JournalEntry]:
        """Requests left running by a process that died: now ``unknown``, returned once.

        ``on_unknown`` is told of each as soon as it is marked. StateWriteError if one
        cannot be marked: those marked before it were told of and are not found again;
        it and the rest are, by the next call."""
        ...


class JournalRows:
    """:meth:`Journal.denied` and :meth:`Journal.started` for an implementation that
    inserts one row (:meth:`_insert`): both stores' journals, one spelling of the two."""

    def denied(
        self,
        path: str,
        commit: str,
        requester: str | None,
        approver: str | None,
        rule: str,
        identity: dict[str, object] | None = None,
    ) -> None:
        self._insert(path, commit, requester, approver, "denied", rule, identity)

    def started(
        self,
        path: str,
        commit: str,
        requester: str | None,
        approver: str | None,
        rule: str,
        identity: dict[str, object] | None = None,
    ) -> None:
        """Record that the request's action is about to run (durable before it does)."""
        self._insert(path, commit, requester, approver, "running", rule, identity)

    def _insert(
        self,
        path: str,
        commit: str,
        requester: str | None,
        approver: str | None,
        state: RequestState,
        rule: str,
        identity: dict[str, object] | None,
    ) -> None:
        """Insert the request's row in ``state`` (finished unless it is ``running``)."""
        raise NotImplementedError


class Outbox(Protocol):
    """The audit records' storage: a chain numbered 1, 2, 3… with no gap, each record
    pending until it is marked delivered. Records are JSON objects; chaining them (their
    hash) is the caller's (:class:`reconciler.audit.AuditLog`)."""

    def append(self, record_id: str, chain: Callable[[int, str], Chained]) -> JsonObject:
        """Store the record ``record_id`` after the last one, once, in one transaction.

        ``chain(seq, prev_hash)`` makes it, given its number and the last record's hash
        (``""`` for the first: the caller knows its genesis hash). A record already stored
        under ``record_id`` is not stored again: its JSON is returned. StateWriteError if
        it cannot be written (nothing is)."""
        ...

    def pending(self, *, limit: int | None = None) -> list[JsonObject]:
        """Records not delivered yet, in seq order; the first ``limit`` of them if given."""
        ...

    def pending_count(self) -> int: ...

    def mark_delivered(self, seqs: Iterable[int]) -> None:
        """Records ``seqs`` were delivered (StateWriteError: they stay pending)."""
        ...

    def all_records(self) -> list[JsonObject]:
        """Every record, delivered or not, in seq order."""
        ...


class StateStore(Protocol):
    """The reconciler's durable state (see the module's docstring)."""

    @property
    def writes(self) -> StateWrites:
        """Which writes fail now and why (health, metrics, logs)."""
        ...

    @property
    def blocks(self) -> bool:
        """Whether a call waits on the network (PostgreSQL): then code on the event loop
        makes it through :class:`reconciler.store.calls.StateCalls`, in a thread; else
        (SQLite) on the loop's thread, where the store's connections are used."""
        ...

    @property
    def journal(self) -> Journal: ...

    @property
    def outbox(self) -> Outbox: ...

    def get_meta(self) -> dict[str, object]: ...

    def set_meta(self, values: Mapping[str, object], *, what: str = "meta") -> None:
        """Store ``values``; StateWriteError (as ``what``) if the write fails."""
        ...

    def get_cursor(self, name: str) -> str | None:
        """The commit a reader of history stopped at (None before it first ran)."""
        ...

    def set_cursor(self, name: str, sha: str) -> None:
        """StateWriteError (``cursor``) if it cannot be written."""
        ...

    def load_check_rows(self) -> list[CheckRow]: ...

    def write_check_rows(self, rows: Sequence[CheckRow]) -> None:
        """Replace the stored statuses with ``rows``; safe from a worker thread.
        StateWriteError (``checks``) if the write fails (the stored rows stay)."""
        ...

    def update_check_rows(self, rows: Sequence[CheckRow], *, removed: Sequence[CheckId]) -> None:
        """Store ``rows`` (each replacing the stored row of its check and host, if any) and
        remove the rows of ``removed``, in one transaction; safe from a worker thread. The
        other rows stay: a save writes only what changed, and replicas each write their
        own hosts' rows. StateWriteError (``checks``) if the write fails (nothing is)."""
        ...

    def close(self) -> None: ...


def encode_check_row(row: CheckRow) -> tuple[Any, ...]:
    """A check row as a store writes it (both stores): its text in the store's encoding
    (:mod:`reconciler.store.text`), the history as JSON."""
    if len(row) != len(CHECK_COLUMNS):
        raise ValueError(f"a check row has {len(CHECK_COLUMNS)} fields, not {len(row)}")
    out = list(row)
    for i in _TEXT_FIELDS:
        if isinstance(out[i], str):
            out[i] = to_stored(out[i])
    out[_HISTORY] = to_json(out[_HISTORY])
    return tuple(out)


def encode_check_id(check: CheckId) -> tuple[str, ...]:
    """A check row's key as the store holds it (to find the row)."""
    return tuple(to_stored(part) for part in check)


def decode_check_row(row: tuple[Any, ...]) -> CheckRow:
    """A stored check row (in :data:`CHECK_COLUMNS`' order), its history a list again."""
    out = list(row)
    for i in _TEXT_FIELDS:
        if isinstance(out[i], str):
            out[i] = from_stored(out[i])
    out[_HISTORY] = from_json(out[_HISTORY])
    return tuple(out)


def journal_row(
    path: str,
    commit: str,
    requester: str | None,
    approver: str | None,
    state: RequestState,
    rule: str,
) -> tuple[str | None, ...]:
    """A journal row's text columns as a store writes them (both stores)."""
    text = (path, commit, requester, approver, state, rule)
    return tuple(None if v is None else to_stored(v) for v in text)


def journal_entry(row: tuple[Any, ...]) -> JournalEntry:
    """A journal row, in the ``requests`` table's column order, as an entry (both stores)."""
    path, commit, requester, approver, state, rule, created, finished, outcome, identity = row
    try:
        outcome = None if outcome is None else from_json(outcome)
        identity = None if identity is None else from_json(identity)
    except ValueError as exc:
        raise StoreError(f"the journal holds a malformed row: {exc}") from exc
    return JournalEntry(
        path=from_stored(str(path)),
        commit=from_stored(str(commit)),
        requester=optional_from_stored(requester),
        approver=optional_from_stored(approver),
        state=from_stored(str(state)),  # type: ignore[arg-type]  # the table's CHECK holds the states
        rule=from_stored(str(rule)),
        created_at=float(created),
        finished_at=None if finished is None else float(finished),
        outcome=outcome,
        identity=identity,
    )


def decode_record(text: object) -> JsonObject:
    """An audit record as stored (JSON text); StoreError if it is not a JSON object."""
    try:
        value = from_json(text)
    except ValueError as exc:
        raise StoreError(f"audit outbox holds a malformed record: {exc}") from exc
    if not isinstance(value, dict):
        raise StoreError("audit outbox holds a malformed record: not a JSON object")
    return value
