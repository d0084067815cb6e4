"""The one table layout of the CLI (``opsmap check``, ``opsmap audit log``).

Columns are separated by two spaces and padded to their widest cell, except the last,
which runs free (a message or a summary); trailing blanks are cut. Cells must already be
inert text (:func:`reconciler.inert.one_line`): the layout counts characters and a
control character or a line break would break it.

On a terminal the last column is cut (with ``…``) to what the terminal's width leaves
it; written to a file or a pipe, a table keeps every cell whole (:func:`output_width`).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from typing import TextIO

MIN_LAST = 20
"""However narrow the terminal, the last column keeps this many characters."""


def output_width(stream: TextIO | None = None) -> int | None:
    """The width to fit a table to: the terminal's columns when ``stream`` (stdout) is a
    terminal (``$COLUMNS`` first, as :func:`shutil.get_terminal_size` reads it), else None."""
    stream = stream or sys.stdout
    try:
        if not os.isatty(stream.fileno()):
            return None
    except (AttributeError, OSError, ValueError):  # no file descriptor: not a terminal
        return None
    return shutil.get_terminal_size().columns


def render_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, width: int | None = None
) -> str:
    """``header`` then ``rows``, one line each (every row as long as the header).

    With ``width``, the last column is cut so that a line fits in it (see :data:`MIN_LAST`).
    """
    lines = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    room = None
    if width is not None:
        room = max(MIN_LAST, width - sum(widths) - 2 * len(widths))
    out = []
    for line in lines:
        cells = [cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True)]
        last = line[-1]
        if room is not None and len(last) > room:
            last = last[: room - 1] + "…"
        out.append("  ".join([*cells, last]).rstrip() + "\n")
    return "".join(out)
