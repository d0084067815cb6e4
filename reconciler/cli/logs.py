"""Where the CLI's log records go: one line each on stderr, as text or as JSON.

- ``text``: ``2026-12-02T01:08:09.123Z INFO reconciler.loop: revision … applied``;
- ``json``: one object a line, ``{"time": "2026-12-02T01:08:09.123Z", "level": "INFO",
  "logger": "reconciler.loop", "message": "…", "map": "shop", "revision": "…"}``, with
  each context field of :mod:`reconciler.logcontext` the record carries, and ``error``
  holding a traceback when there is one.

Times are UTC, with the zone (``Z``), in both. Every message and field is inert
(:func:`reconciler.inert.for_log`): repo and host text can neither break a line nor drive a
terminal, and in JSON it is a string value, never a key. Third-party libraries that
speak at INFO for every event (watchfiles on each change, asyncssh on each channel) are
kept to warnings and worse unless ``DEBUG`` is asked for.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TextIO

from reconciler.inert import for_log
from reconciler.logcontext import fields_of

FORMATS = ("text", "json")
NOISY = ("asyncssh", "watchfiles")
"""Loggers kept to WARNING and worse unless DEBUG is asked for."""


def utc_time(record: logging.LogRecord) -> str:
    """``record``'s time as ISO 8601 in UTC, to the millisecond, with its zone: ``…Z``."""
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: MESSAGE``, or ``prefix: LEVEL: MESSAGE`` for short commands."""

    def __init__(self, *, prefix: str | None = None) -> None:
        super().__init__()
        self.prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if self.prefix is not None:
            line = f"{self.prefix}: {record.levelname}: {message}"
        else:
            line = f"{utc_time(record)} {record.levelname} {record.name}: {message}"
        if record.exc_info:
            line += " " + for_log(self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line, the record's context fields among its keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "time": utc_time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": for_log(record.getMessage()),
        }
        entry.update({name: for_log(value) for name, value in fields_of(record).items()})
        if record.exc_info:
            entry["error"] = for_log(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(
    level: int | str,
    *,
    log_format: str = "text",
    prefix: str | None = None,
    stream: TextIO | None = None,
    force: bool = True,
) -> None:
    """Send every record at ``level`` or worse to ``stream`` (stderr) in ``log_format``.

    The root logger's handlers are replaced; without ``force``, a root logger that has
    handlers already (a test's capture) keeps them, as :func:`logging.basicConfig` does.
    """
    if log_format not in FORMATS:
        raise ValueError(f"not a log format: {log_format!r}")
    root = logging.getLogger()
    root.setLevel(level)
    noisy = logging.DEBUG if root.level <= logging.DEBUG else max(logging.WARNING, root.level)
    for name in NOISY:
        logging.getLogger(name).setLevel(noisy)
    if root.handlers and not force:
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter = JsonFormatter() if log_format == "json" else TextFormatter(prefix=prefix)
    handler.setFormatter(formatter)
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    # a library's warning is a record like any other (py.warnings), not raw text on
    # stderr: a JSON log stays one JSON object per line
    logging.captureWarnings(True)


__all__ = ["FORMATS", "JsonFormatter", "TextFormatter", "setup_logging", "utc_time"]
