"""Any text in an audit record keeps the chain verifiable, from either store to the notes.

Property test (hypothesis over all of Unicode, lone surrogates and pairs of them, NUL,
line separators, and raw bytes read with ``surrogateescape``): records whose actor,
target and details hold such text are chained in SQLite and in PostgreSQL, read back and
verified, delivered as git notes to a real remote, read from there and verified again by
``opsmap audit verify``; ``opsmap audit`` lists them (table and JSON) as UTF-8 with every
record on its own line.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

from any_text import ANY_TEXT, FROM_BYTES
from audit_support import World
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.audit import AuditLog, NotesPublisher, NotesReader, verify_chain
from reconciler.cli import main
from reconciler.store.protocol import StateStore

EXAMPLES = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def opsmap(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@EXAMPLES
@given(texts=st.lists(ANY_TEXT, min_size=3, max_size=3), output=FROM_BYTES)
def test_any_text_in_a_record_verifies_in_the_store_the_notes_and_the_cli(
    any_store: StateStore, world: World, texts: list[str], output: str
) -> None:
    actor, key, value = texts
    log = AuditLog(any_store.outbox)
    details: dict[str, Any] = {key: value, "output": output, "list": [actor, value]}
    log.append(action="action.failed", actor=actor, target={"request": key, "map": value},
               details=details, commit=world.second, revision=world.first)  # fmt: skip
    log.flush()
    records = log.all_records()
    assert verify_chain(records) is None
    last = records[-1]
    assert last.details == json.loads(json.dumps(details))  # as JSON reads it back
    assert last.details["output"].encode("utf-8", "surrogateescape") == output.encode(
        "utf-8", "surrogateescape"
    )

    NotesPublisher(world.source.mirror, world.remote.url).publish(records)
    notes = NotesReader(world.remote.path).read()
    assert notes.bad_lines == []
    assert [found.record for found in notes.records] == records
    code, out, err = opsmap("audit", "verify", "--repo", str(world.remote.path))
    assert (code, out.strip()) == (0, f"chain intact: {len(records)} records"), err
    for form in ("table", "json"):
        code, out, err = opsmap("audit", "--repo", str(world.remote.path), "--format", form)
        assert code == 0, err
        out.encode("utf-8")  # no lone surrogate reaches the terminal
        assert "\u2028" not in out
        assert "\x85" not in out
    assert len(json.loads(out)) == len(records)
