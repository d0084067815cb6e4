"""Text from a target host or the repo made inert for a log line (one record, one line).

``agentless`` does not import ``reconciler``, so it keeps this small equivalent of
``reconciler.inert.for_log`` for the log lines it writes: every control character (C0,
DEL, C1, newlines, Unicode bidi and line separators) is shown as a visible escape.
"""

from __future__ import annotations

import re

_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def for_log(text: object) -> str:
    """``text`` on one line, every control character as an escape such as ``\\x1b``."""
    return _CONTROLS.sub(_visible, str(text))


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
