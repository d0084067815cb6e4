"""``mask:`` in ``opsmap.yaml``: regular expressions hidden from every output excerpt.

A repo may list up to :data:`MAX_PATTERNS` patterns of at most :data:`MAX_PATTERN_CHARS`
characters; every match in a check's message or an action's output excerpt becomes
:data:`REPLACEMENT` before it is stored, shown or pushed (status, SQLite, audit notes).

Python's ``re`` backtracks, so a pattern is accepted only when its matching time cannot
blow up (:func:`pattern_problem`): every quantifier that may match a varying count is
possessive (``*+``, ``++``, ``?+``, ``{m,n}+``) or sits in an atomic group, there is no
backreference and no lookaround, and the ways to match at one place (alternatives,
multiplied along the pattern and raised to the power of a fixed count ``{n}``) are at
most :data:`MAX_CHOICES`. Text is masked one line at a time, in pieces of at most
:data:`MAX_PIECE_CHARS`, after cutting it to :data:`MAX_INPUT_CHARS`: so a match never spans
lines, and masking costs at most a few million steps per pattern.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import sre_constants as _c
    import sre_parse as _p

__all__ = ["MAX_PATTERNS", "MAX_PATTERN_CHARS", "REPLACEMENT", "Masker", "pattern_problem"]

MAX_PATTERNS = 16
MAX_PATTERN_CHARS = 200
MAX_CHOICES = 64
MAX_INPUT_CHARS = 16384
MAX_PIECE_CHARS = 1024
REPLACEMENT = "***"

_VARYING = (_c.MAX_REPEAT, _c.MIN_REPEAT)
_LOOKAROUND = (_c.ASSERT, _c.ASSERT_NOT)
_BACKREF = (_c.GROUPREF, _c.GROUPREF_EXISTS, _c.GROUPREF_IGNORE)


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be a mask (does not compile, or may backtrack without bound)."""
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"a mask pattern has at most {MAX_PATTERN_CHARS} characters"
    try:
        re.compile(pattern)
        parsed = _p.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        return f"not a regular expression: {getattr(exc, 'msg', exc)}"
    if parsed.getwidth()[0] == 0:
        return "the pattern can match an empty text"
    for op, av in _walk(parsed):
        if op in _BACKREF:
            return "backreferences are not allowed in a mask"
        if op in _LOOKAROUND:
            return "lookahead and lookbehind are not allowed in a mask"
        if op in _VARYING and av[0] != av[1]:
            return (
                "a quantifier that matches a varying count must be possessive in a mask "
                "(write *+, ++, ?+ or {m,n}+): it cannot backtrack then"
            )
    if _choices(parsed) > MAX_CHOICES:
        return (
            f"the alternatives (|) multiply to more than {MAX_CHOICES} ways to match "
            "(a group of alternatives repeated n times counts as its ways to the power n)"
        )
    return None


def _choices(parsed: Any) -> int:
    """How many ways the engine may try to match ``parsed`` at one place (capped).

    Alternatives add up, a sequence multiplies, a fixed count ``{n}`` raises to the
    power n; a possessive repeat or an atomic group is tried one way once matched.
    """
    total = 1
    for op, av in parsed:
        args = av if isinstance(av, tuple) else (av,)
        if op is _c.BRANCH:
            ways = sum(_choices(branch) for branch in _branches(args))
        elif op in _VARYING:
            ways = 1
            for _ in range(min(int(args[0]), MAX_CHOICES + 1)):
                ways = min(ways * _choices(args[2]), MAX_CHOICES + 1)
        else:
            inner = [a for a in args if isinstance(a, _p.SubPattern)]
            ways = 1
            for sub in inner:
                ways = min(ways * _choices(sub), MAX_CHOICES + 1)
        total = min(total * max(ways, 1), MAX_CHOICES + 1)
    return total


def _branches(args: tuple[object, ...]) -> list[Any]:
    found = args[1] if len(args) > 1 else []
    return list(found) if isinstance(found, list | tuple) else []


def _walk(parsed: Any) -> Iterator[tuple[object, tuple[object, ...]]]:
    """Every node of a parsed pattern (an ``sre_parse.SubPattern``), depth first."""
    for op, av in parsed:
        args = av if isinstance(av, tuple) else (av,)
        yield op, args
        if op is _c.BRANCH:
            for branch in _branches(args):
                yield from _walk(branch)
            continue
        for arg in args:
            if isinstance(arg, _p.SubPattern):
                yield from _walk(arg)


@dataclass(frozen=True)
class Masker:
    """The compiled ``mask:`` patterns of one revision; :meth:`apply` hides their matches."""

    patterns: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def of(cls, patterns: Sequence[str]) -> Masker:
        """Patterns already validated (:func:`pattern_problem`); others are left out."""
        return cls(tuple(re.compile(p) for p in patterns if pattern_problem(p) is None))

    def apply(self, text: str) -> str:
        """``text`` (cut to :data:`MAX_INPUT_CHARS`) with every match replaced."""
        if not self.patterns:
            return text
        cut = text[:MAX_INPUT_CHARS]
        lines = cut.split("\n")
        masked = "\n".join(self._line(line) for line in lines)
        return masked if len(text) <= MAX_INPUT_CHARS else f"{masked}…[cut]"

    def _line(self, line: str) -> str:
        pieces = [line[i : i + MAX_PIECE_CHARS] for i in range(0, len(line), MAX_PIECE_CHARS)]
        out = []
        for piece in pieces or [""]:
            for pattern in self.patterns:
                piece = pattern.sub(REPLACEMENT, piece)
            out.append(piece)
        return "".join(out)
