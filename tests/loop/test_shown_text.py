"""Text a host or a PR supplied, read back from either store, is shown safely: the status
JSON (whole, and as its kept parts), an event of the stream, and a JSON log line are
UTF-8 (no lone surrogate reaches a socket or a file), each one line where the format
needs it, and read back as the text that was stored.

Property tests over all of Unicode and raw bytes (hypothesis), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import json
import logging

from any_text import ANY_TEXT, FROM_BYTES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snapshots import check, snapshot

from reconciler.cli.logs import JsonFormatter
from reconciler.inert import for_log
from reconciler.logcontext import context
from reconciler.loop.rows import statuses_from_rows
from reconciler.loop.statusjson import StatusJson
from reconciler.loop.view import encode_json
from reconciler.server.broker import wire
from reconciler.store.protocol import CheckRow, StateStore

EXAMPLES = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def json_normal(value: object) -> object:
    return json.loads(json.dumps(value))


def _row(names: list[str], message: str) -> CheckRow:
    map_, component, check_name, host = names
    return (map_, component, check_name, host, 2, "hard", 2, 1, message, None, 1.0, 0.1, 1.0,
            0, [2], 1)  # fmt: skip


@EXAMPLES
@given(names=st.lists(ANY_TEXT, min_size=4, max_size=4), message=FROM_BYTES, extra=ANY_TEXT)
def test_stored_text_is_shown_safely_in_the_status_the_stream_and_the_logs(
    any_store: StateStore, names: list[str], message: str, extra: str
) -> None:
    any_store.write_check_rows([_row(names, message + extra)])
    (key, status), *_ = statuses_from_rows(any_store.load_check_rows(), wall_offset=0).items()
    assert (list(key), status.message) == (names, message + extra)

    # the status JSON, whole and from its kept parts
    view = dataclasses.replace(check(key.check, key.host, "CRITICAL"), message=status.message)
    base = snapshot()
    component = dataclasses.replace(base.maps[0].components[0], checks=(view,))
    shown = dataclasses.replace(
        base, maps=(dataclasses.replace(base.maps[0], components=(component,)),)
    )
    document = encode_json(shown.to_json())
    assert StatusJson().encode(shown) == document
    parsed = json.loads(document.decode("utf-8"))
    assert parsed["maps"][0]["components"][0]["checks"][0]["message"] == json_normal(status.message)

    # an event of the stream: one data line, UTF-8
    event = wire(7, "check", {"map": key.map, "host": key.host, "message": status.message})
    lines = event.decode("utf-8").split("\n")
    assert lines[:2] == ["id: 7", "event: check"]
    assert lines[2].startswith("data: ")
    assert lines[3:] == ["", ""]
    assert json.loads(lines[2][6:])["message"] == json_normal(status.message)

    # a JSON log line: one line, UTF-8, the text made inert
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "check %s: %s", (key.check,
                               status.message), None)  # fmt: skip
    record.__dict__.update(context(map=key.map, host=key.host))
    line = JsonFormatter().format(record)
    line.encode("utf-8")
    assert "\n" not in line
    assert "\u2028" not in line
    entry = json.loads(line)
    assert entry["message"] == for_log(f"check {key.check}: {status.message}")
    assert entry["host"] == for_log(key.host)
