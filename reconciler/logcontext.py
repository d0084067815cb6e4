"""The context of a log record (map, component, revision, host, request) as fields, not text.

A record carries its context as ``extra`` attributes named in :data:`FIELDS`; the JSON log
format (``opsmap run --log-format json``) writes each as a field of its line, so that a
log pipeline can select "everything about host db-1" without parsing messages. Either
pass ``extra=context(map=…, host=…)`` on a call, or keep a :class:`ContextLogger` that adds
the same fields to every record it logs (a :class:`logging.LoggerAdapter`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from typing import Any

FIELDS = ("map", "component", "check", "host", "revision", "request")
"""The context fields, in the order a JSON line writes them."""


def context(**fields: object) -> dict[str, object]:
    """``fields`` for ``extra=``: those in :data:`FIELDS` that are not None, as text."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise TypeError(f"not a log context field: {', '.join(sorted(unknown))}")
    return {name: str(value) for name, value in fields.items() if value is not None}


def fields_of(record: logging.LogRecord) -> dict[str, str]:
    """The context fields ``record`` carries, in :data:`FIELDS` order."""
    values = vars(record)
    return {name: str(values[name]) for name in FIELDS if values.get(name) is not None}


class ContextLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger whose every record carries ``fields`` (a call's own ``extra`` wins)."""

    def __init__(self, logger: logging.Logger, **fields: object) -> None:
        super().__init__(logger, context(**fields))

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        own: Mapping[str, object] = kwargs.get("extra") or {}
        kwargs["extra"] = {**(self.extra or {}), **own}
        return msg, kwargs


__all__ = ["FIELDS", "ContextLogger", "context", "fields_of"]
