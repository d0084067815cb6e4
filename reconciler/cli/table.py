"""The one table layout of the CLI (``opsmap check``, ``opsmap audit log``).

Columns are separated by two spaces and padded to their widest cell, except the last,
which runs free (a message or a summary); trailing blanks are cut. Cells must already be
inert text (:func:`reconciler.inert.one_line`): the layout counts characters and a
control character or a line break would break it.
"""

from __future__ import annotations

from collections.abc import Sequence


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``header`` then ``rows``, one line each (every row as long as the header)."""
    lines = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    out = []
    for line in lines:
        cells = [cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True)]
        out.append("  ".join([*cells, line[-1]]).rstrip() + "\n")
    return "".join(out)
