"""Any text and any bytes round-trip through both stores (:mod:`reconciler.store.text`).

Property tests (hypothesis: all of Unicode, lone surrogates, NUL, raw bytes decoded with
``surrogateescape``) write check rows, journal entries, meta values and audit records to
SQLite and to a real PostgreSQL database, and read back exactly what was written; rows
written before the encoding (a backslash as itself) read back as they were after the
migration. A value the store cannot take is an error of that call, the store's own.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from any_text import ANY_BYTES, ANY_TEXT, FROM_BYTES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.store import postgres, sqlite
from reconciler.store.protocol import Chained, CheckRow, StateStore, StoreError
from reconciler.store.text import from_stored, to_json, to_stored

EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def json_normal(value: object) -> object:
    """``value`` as JSON reads it back (a high surrogate before a low one: one character)."""
    return json.loads(json.dumps(value))


# -- the encoding alone ----------------------------------------------------------------


@given(ANY_TEXT)
def test_the_text_encoding_is_reversible_and_storable(text: str) -> None:
    stored = to_stored(text)
    assert from_stored(stored) == text
    assert "\0" not in stored
    stored.encode("utf-8")  # no lone surrogate: both drivers send it
    if not any(c in text for c in "\\\0") and not any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        assert stored == text  # ordinary text is stored as it is


@given(ANY_TEXT, ANY_TEXT)
def test_the_text_encoding_keeps_different_texts_apart(a: str, b: str) -> None:
    assert (to_stored(a) == to_stored(b)) == (a == b)


@given(ANY_BYTES)
def test_bytes_come_back_the_same_bytes(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")
    assert from_stored(to_stored(text)).encode("utf-8", "surrogateescape") == data


@given(ANY_TEXT)
def test_json_columns_are_ascii(text: str) -> None:
    stored = to_json({"k": text, text: [text]})
    assert stored.isascii()
    assert "\0" not in stored
    assert json.loads(stored) == json_normal({"k": text, text: [text]})


# -- both stores -----------------------------------------------------------------------


def _row(map_: str, component: str, check: str, host: str, message: str) -> CheckRow:
    return (map_, component, check, host, 2, "HARD", 2, 1, message, None, 100.0, 0.2, 90.0, 0,
            [0, 2], 1)  # fmt: skip


@EXAMPLES
@given(texts=st.lists(ANY_TEXT, min_size=5, max_size=5), message=FROM_BYTES)
def test_check_rows_hold_any_text(any_store: StateStore, texts: list[str], message: str) -> None:
    map_, component, check, host, other = texts
    row = _row(map_, component, check, host, message + other)
    any_store.write_check_rows([row])
    assert any_store.load_check_rows() == [row]
    second = _row(other, component, check, host, "\0")
    any_store.update_check_rows([second], removed=[(map_, component, check, host)])
    assert any_store.load_check_rows() == [second]


@EXAMPLES
@given(key=ANY_TEXT, value=ANY_TEXT)
def test_meta_values_and_cursors_hold_any_text(any_store: StateStore, key: str, value: str) -> None:
    any_store.set_meta({key: value, "k": [value]})
    meta = any_store.get_meta()
    assert meta[key] == json_normal(value)
    assert meta["k"] == json_normal([value])
    any_store.set_cursor(key, value)
    assert any_store.get_cursor(key) == json_normal(value)


_seen = iter(range(10**9))


@EXAMPLES
@given(path=ANY_TEXT, people=st.lists(ANY_TEXT, min_size=3, max_size=3), output=FROM_BYTES)
def test_the_journal_holds_any_text(
    any_store: StateStore, path: str, people: list[str], output: str
) -> None:
    requester, approver, rule = people
    path = f"{path}#{next(_seen)}"
    identity = {"requester": {"identity": requester, "verified": False}}
    any_store.journal.started(path, "a" * 40, requester, approver, rule, identity)
    any_store.journal.finished(path, "failed", {"stdout": output, rule: [approver]})
    entry = any_store.journal.get(path)
    assert entry is not None
    assert (entry.path, entry.requester, entry.approver, entry.rule) == (
        path, requester, approver, rule,
    )  # fmt: skip
    assert entry.outcome == json_normal({"stdout": output, rule: [approver]})
    assert entry.identity == json_normal(identity)
    assert any_store.journal.recent(1)[0].path == path
    denied = f"{path}#denied"
    any_store.journal.denied(denied, "b" * 40, None, None, rule + "\0")
    found = any_store.journal.get(denied)
    assert found is not None
    assert (found.rule, found.state) == (rule + "\0", "denied")


@EXAMPLES
@given(text=ANY_TEXT, output=FROM_BYTES)
def test_the_outbox_holds_any_text(any_store: StateStore, text: str, output: str) -> None:
    record_id = f"r{next(_seen)}"
    record = {"id": record_id, "details": {text: output, "t": text}}
    stored = any_store.outbox.append(record_id, lambda seq, prev: Chained("0" * 64, record))
    assert stored == record
    assert any_store.outbox.all_records()[-1] == json_normal(record)


# -- rows written before the encoding --------------------------------------------------

OLD_PATH = "requests/a\\b.yaml"
OLD_RULE = "denied: C:\\temp\\0 and \\u0041"


def _write_old_rows(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Rows as the schema before the encoding wrote them (a backslash as itself)."""
    row = (OLD_PATH, "c" * 40, "x\\y", None, "denied", OLD_RULE, 1.0, 1.0, "{}", None)
    check = ("m\\", "c", "k", "h", 0, "HARD", 0, 1, "out\\0", None, None, None, None, 0, "[]", 1)
    if kind == "sqlite":
        with sqlite3.connect(tmp_path / "state" / "opsmap.sqlite3") as db:
            db.execute("INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            db.execute(f"INSERT INTO check_status VALUES ({', '.join('?' * 16)})", check)
            db.execute(f"PRAGMA user_version={sqlite.SCHEMA_VERSION - 1}")
    else:
        url: str = request.getfixturevalue("pg_url")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO requests (path, commit_sha, requester, approver, state, rule,"
                " created_at, finished_at, outcome, identity) VALUES"
                " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                row,
            )
            conn.execute(f"INSERT INTO check_status VALUES ({', '.join(['%s'] * 16)})", check)
            conn.execute("UPDATE schema_version SET version = %s", (postgres.SCHEMA_VERSION - 1,))


def test_rows_written_before_the_encoding_read_back_as_they_were(
    store_kind: str,
    open_store: Callable[[], StateStore],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    open_store().close()
    _write_old_rows(store_kind, tmp_path, request)
    again = open_store()
    try:
        entry = again.journal.get(OLD_PATH)
        assert entry is not None
        assert (entry.path, entry.requester, entry.rule) == (OLD_PATH, "x\\y", OLD_RULE)
        rows = again.load_check_rows()
        assert [(r[0], r[8]) for r in rows] == [("m\\", "out\\0")]
    finally:
        again.close()


# -- what still cannot be stored -------------------------------------------------------


def test_a_value_the_database_cannot_take_is_a_store_error_of_that_call(
    any_store: StateStore,
) -> None:
    """A number past 64 bits (no text can be one any more): StoreError, not the driver's,
    and the store goes on working."""
    row = _row("m", "c", "k", "h", "x")
    with pytest.raises(StoreError):
        any_store.write_check_rows([(*row[:7], 2**70, *row[8:])])
    any_store.write_check_rows([_row("m", "c", "k", "h", "\0")])
    assert any_store.load_check_rows() == [_row("m", "c", "k", "h", "\0")]
