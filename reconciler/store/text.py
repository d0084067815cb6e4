"""The one encoding of text at the state store's edge: what both databases hold for a str.

Text that OpsMap stores comes from people it does not trust: file names and YAML values
of a PR, commit metadata, the output of a command on a target host (bytes, decoded with
``surrogateescape``, so a byte that is not UTF-8 is a lone surrogate U+DC80..U+DCFF). A
Python str may hold any code point. PostgreSQL's ``text`` refuses NUL, and neither
psycopg nor sqlite3 sends a lone surrogate (not UTF-8). So every value crosses the edge
encoded, the same way for SQLite and PostgreSQL, and reversibly (nothing is replaced):

- a text column holds :func:`to_stored` of the str: ``\\`` is written ``\\\\``, NUL
  ``\\0``, and each lone surrogate ``\\uXXXX`` (4 lowercase hex digits); everything else
  as it is. :func:`from_stored` reads it back, exactly. Keys are encoded the same way,
  so a lookup by path or by check finds its row.
- a JSON column holds :func:`to_json` of the value: JSON with every character past ASCII
  escaped (``\\u0000``, ``\\udc80``…), so its text is ASCII. As in JSON (and UTF-16), a
  high surrogate followed by a low one reads back as the one character they encode.

Bytes that arrived as ``surrogateescape`` text go back to the very same bytes
(``text.encode("utf-8", "surrogateescape")``) after a round trip through either store.
Rows written before this encoding had a backslash written as itself: the schema
migration that introduced it doubles them (SQLite 5, PostgreSQL 4), so they read back as
they were written; JSON columns were ASCII JSON already, and are unchanged.
"""

from __future__ import annotations

import json
import re
from typing import Any

_SPECIAL = re.compile("[\\\\\x00\ud800-\udfff]")
_ESCAPE = re.compile(r"\\(\\|0|u[0-9a-f]{4})")


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    if char == "\0":
        return "\\0"
    return f"\\u{ord(char):04x}"


def _unescaped(match: re.Match[str]) -> str:
    code = match.group(1)
    if code == "\\":
        return "\\"
    if code == "0":
        return "\0"
    return chr(int(code[1:], 16))


def to_stored(text: str) -> str:
    """``text`` as a text column holds it: no NUL, no lone surrogate, reversible."""
    if text.isascii() and "\\" not in text and "\0" not in text:
        return text  # the common case, without the regex (isascii is a flag, not a scan)
    return _SPECIAL.sub(_escaped, text)


def from_stored(stored: str) -> str:
    """The str that :func:`to_stored` made ``stored`` of."""
    return _ESCAPE.sub(_unescaped, stored) if "\\" in stored else stored


def optional_to_stored(text: str | None) -> str | None:
    return None if text is None else to_stored(text)


def optional_from_stored(stored: object) -> str | None:
    return None if stored is None else from_stored(str(stored))


def to_json(value: object, *, sort_keys: bool = False) -> str:
    """``value`` as a JSON column holds it: ASCII JSON text."""
    return json.dumps(value, ensure_ascii=True, sort_keys=sort_keys)


def from_json(stored: object) -> Any:
    """The value of a JSON column (ValueError if it is not JSON)."""
    return json.loads(str(stored))
