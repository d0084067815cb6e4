"""The log formats: text and JSON lines, UTC with the zone, context as fields, inert text."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from reconciler.cli.logs import JsonFormatter, TextFormatter, setup_logging
from reconciler.inert import InertLogRecord
from reconciler.logcontext import ContextLogger, context

HOSTILE = "db-1\n2026-01-01T00:00:00.000Z ERROR forged\x1b]8;;x\x07\u202e"


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = InertLogRecord("reconciler.loop", logging.WARNING, __file__, 1, message, args, None)
    made.created, made.msecs = 1764637689.25, 250.0  # 2025-12-02T01:08:09.250Z
    for name, value in extra.items():
        setattr(made, name, value)
    return made


def test_a_json_line_carries_the_context_as_fields_and_the_time_in_utc() -> None:
    line = JsonFormatter().format(
        record("check %s failed", "ping", **context(map="shop", host="db-1", revision="ab" * 20))
    )

    assert json.loads(line) == {
        "time": "2025-12-02T01:08:09.250Z",
        "level": "WARNING",
        "logger": "reconciler.loop",
        "message": "check ping failed",
        "map": "shop",
        "host": "db-1",
        "revision": "ab" * 20,
    }


def test_hostile_text_stays_inert_in_both_formats() -> None:
    hostile = record("host %s down", HOSTILE, **context(host=HOSTILE, request=HOSTILE))

    line = JsonFormatter().format(hostile)
    assert not {"\n", "\x1b", "\u202e"} & set(line)
    fields = json.loads(line)
    assert set(fields) == {"time", "level", "logger", "message", "host", "request"}
    assert fields["host"] == "db-1\\x0a2026-01-01T00:00:00.000Z ERROR forged\\x1b]8;;x\\x07\\u202e"
    assert fields["message"] == f"host {fields['host']} down"

    text = TextFormatter().format(hostile)
    assert text.startswith("2025-12-02T01:08:09.250Z WARNING reconciler.loop: host db-1\\x0a")
    assert "\n" not in text


def test_a_traceback_is_one_field() -> None:
    failed = record("it broke")
    try:
        raise ValueError("boom\nline two")
    except ValueError:
        failed.exc_info = sys.exc_info()
    fields = json.loads(JsonFormatter().format(failed))
    assert fields["error"].startswith("Traceback (most recent call last):\\x0a")
    assert "ValueError: boom\\x0aline two" in fields["error"]


def test_a_context_logger_adds_its_fields_and_a_call_may_add_more() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("test.logs.adapter")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        about = ContextLogger(logger, request="requests/r.yaml", map="shop")
        about.info("running", extra=context(host="web-1"))
        about.warning("denied", extra=context(map="other"))
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (first["request"], first["map"], first["host"]) == ("requests/r.yaml", "shop", "web-1")
    assert (second["map"], "host" in second) == ("other", False)


def test_only_the_context_fields_are_context() -> None:
    with pytest.raises(TypeError, match="not a log context field: user"):
        context(user="alice")
    assert context(map="m", host=None) == {"map": "m"}


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    noisy = {n: logging.getLogger(n).level for n in ("asyncssh", "watchfiles")}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(saved[0])
    for handler in saved[1]:
        root.addHandler(handler)
    for name, level in noisy.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_third_party_chatter_stays_below_info_unless_debug_is_asked_for() -> None:
    stream = io.StringIO()
    setup_logging("INFO", log_format="json", stream=stream)
    logging.getLogger("watchfiles.main").info("3 changes detected")
    logging.getLogger("asyncssh").info("Opening SSH connection")
    logging.getLogger("watchfiles.main").warning("cannot watch")
    logging.getLogger("reconciler.loop").info("applied")
    names = [json.loads(line)["logger"] for line in stream.getvalue().splitlines()]
    assert names == ["watchfiles.main", "reconciler.loop"]

    setup_logging("DEBUG", log_format="text", stream=stream)
    assert logging.getLogger("watchfiles").getEffectiveLevel() == logging.DEBUG


_WARNINGS = """
import warnings
from cryptography.utils import CryptographyDeprecationWarning
from reconciler.cli.logs import setup_logging
setup_logging("INFO", log_format="json")
import agentless.ssh  # its filter: asyncssh's DSA annotations under the newest cryptography
warnings.warn_explicit(
    CryptographyDeprecationWarning("DSA is deprecated"), CryptographyDeprecationWarning,
    "misc.py", 32, module="asyncssh.crypto.misc",
)
warnings.warn("a library's own warning", UserWarning, stacklevel=1)
"""


def test_warnings_are_log_records_and_asyncssh_dsa_noise_is_dropped_at_its_source() -> None:
    """A JSON log stays JSON: a warning is a ``py.warnings`` record, not raw stderr text."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-W", "default", "-c", _WARNINGS],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    entries = [json.loads(line) for line in done.stderr.splitlines()]
    assert [e["logger"] for e in entries] == ["py.warnings"]
    assert "a library's own warning" in entries[0]["message"]
    assert "DSA" not in done.stderr
