"""Text from outside made inert: one function per medium where OpsMap shows it.

Repo files and target output are written by people OpsMap does not trust: a file name, a
description or a line of command output must not drive the terminal (ESC/OSC sequences),
forge a log line (a newline), or become live Markdown (a link, an image, a mention, a
fence break) in a pull request comment. Every place that shows such text goes through one
of these:

- :func:`for_terminal`: control characters (C0, DEL, C1, Unicode bidi and line/paragraph
  separators) shown as visible escapes such as ``\\x1b``; newlines and tabs are kept.
- :func:`for_log`: the same, and newlines too, so that one record is one line.
- :func:`for_markdown`: plain text for Markdown and the HTML inside it (``<summary>``): every
  character that could start syntax is a character reference, which CommonMark reads as
  a literal; mentions, issue references and bare URLs are broken with a zero-width space,
  as GitHub's own tools do. One line.
- :func:`code_span` / :func:`code_fence`: code whose backtick run is longer than any inside.

None of them escapes the backslash: ``\\x1b`` shown is either an escaped ESC or the four
characters, and both are harmless.
"""

from __future__ import annotations

import logging
import re

_CONTROLS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
"""Escaped wherever text is shown: controls, line breaks and bidi overrides, and lone
surrogates (a byte that was not UTF-8, read with ``surrogateescape``: no output takes it)."""
_KEPT_ON_TERMINAL = {"\n", "\t"}
_JSON_WHITESPACE = {"\n", "\t", "\r"}
_LINE_BREAKS = re.compile("\r\n|[\n\r\x0b\x0c\x85\u2028\u2029]")
_ZWSP = "&#8203;"
_MARKDOWN_CHARS = frozenset("\\`*_[]<>#!|~&$@")
_BLOCK_START = frozenset("-+=")
_BREAK_AFTER = {"@", "#"}


def _visible(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def for_terminal(text: object) -> str:
    """``text`` with every control character shown as an escape; newlines and tabs kept."""
    value = str(text)
    return _CONTROLS.sub(
        lambda m: m.group() if m.group() in _KEPT_ON_TERMINAL else _visible(m.group()), value
    )


def for_log(text: object) -> str:
    """``text`` on one line: every control character, newlines included, as an escape."""
    return _CONTROLS.sub(lambda m: _visible(m.group()), str(text))


def for_json_text(text: str) -> str:
    """JSON text (what ``json.dumps`` wrote, ``ensure_ascii=False``) with every character
    :func:`for_log` escapes as a JSON ``\\uXXXX`` escape: the same value when read back,
    its lines as ``json.dumps`` laid them out, valid UTF-8 (a lone surrogate included), no
    line broken or reordered on a terminal. The whitespace between JSON's tokens stays: in
    its strings ``json.dumps`` escapes every C0 control itself."""
    return _CONTROLS.sub(
        lambda m: m.group() if m.group() in _JSON_WHITESPACE else f"\\u{ord(m.group()):04x}",
        text,
    )


def one_line(text: object) -> str:
    """``text`` with its line breaks and tabs as spaces and other controls escaped."""
    return for_log(_LINE_BREAKS.sub(" ", str(text).replace("\t", " ")))


def for_markdown(text: object) -> str:
    """``text`` as inert Markdown on one line: literal wherever it lands, cell or summary."""
    value = one_line(text)
    out: list[str] = []
    for index, char in enumerate(value):
        if char in _MARKDOWN_CHARS or (index == 0 and char in _BLOCK_START):
            out.append(f"&#{ord(char)};")
        else:
            out.append(char)
        if char in _BREAK_AFTER:
            out.append(_ZWSP)
    result = "".join(out)
    # a leading "1." or "1)" starts an ordered list; bare URLs autolink on GitHub
    result = re.sub(r"^(\d+)\.", r"\1&#46;", result)
    return result.replace("://", f":{_ZWSP}//").replace("www.", f"www{_ZWSP}.")


def _ticks(text: str, *, minimum: int) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(longest + 1, minimum)


def code_span(text: object) -> str:
    """Inline code holding ``text`` on one line, its backtick run longer than any inside.

    A pipe is escaped (``\\|``) so that a span keeps its table cell whole.
    """
    flat = one_line(text)
    ticks = _ticks(flat, minimum=1)
    pad = " " if flat[:1] in ("`", " ") or flat[-1:] in ("`", " ") else ""
    return f"{ticks}{pad}{flat}{pad}{ticks}".replace("|", "\\|")


def code_fence(text: object, language: str = "") -> str:
    """A fenced code block holding ``text``, its fence longer than any backtick run inside."""
    body = for_terminal(str(text).replace("\r\n", "\n")).replace("\t", "    ").rstrip("\n")
    ticks = _ticks(body, minimum=3)
    return f"{ticks}{language}\n{body}\n{ticks}"


class InertLogRecord(logging.LogRecord):
    """A log record whose message is one inert line, whatever its arguments hold."""

    def getMessage(self) -> str:
        return for_log(super().getMessage())


def install_inert_logging() -> None:
    """Make every log record of this process inert (:class:`InertLogRecord`)."""
    logging.setLogRecordFactory(InertLogRecord)


def excerpt(value: object, limit: int = 60) -> str:
    """``value`` quoted in a message (``'text'``, or its repr), cut to about ``limit``.

    The text is quoted as it is: each medium makes it inert where it is shown.
    """
    text = f"'{value}'" if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 2] + "…'"
