"""The CLI's one table layout: padded columns, a free last column, no trailing blanks."""

from __future__ import annotations

from reconciler.cli.table import render_table


def test_columns_are_padded_to_the_widest_cell_and_the_last_runs_free() -> None:
    text = render_table(("A", "BB", "MESSAGE"), [("long", "x", "a long message"), ("y", "", "")])
    assert text.splitlines() == ["A     BB  MESSAGE", "long  x   a long message", "y"]


def test_a_header_alone() -> None:
    assert render_table(("SEQ", "TIME"), []) == "SEQ  TIME\n"
