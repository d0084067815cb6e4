"""The CLI's one table layout: padded columns, a free last column, no trailing blanks."""

from __future__ import annotations

from reconciler.cli.table import MIN_LAST, render_table


def test_columns_are_padded_to_the_widest_cell_and_the_last_runs_free() -> None:
    text = render_table(("A", "BB", "MESSAGE"), [("long", "x", "a long message"), ("y", "", "")])
    assert text.splitlines() == ["A     BB  MESSAGE", "long  x   a long message", "y"]


def test_a_header_alone() -> None:
    assert render_table(("SEQ", "TIME"), []) == "SEQ  TIME\n"


def test_a_width_cuts_the_last_column_only() -> None:
    rows = [("long", "x", "a long message that does not fit"), ("y", "", "short")]
    text = render_table(("A", "BB", "MESSAGE"), rows, width=30)
    assert text.splitlines() == [
        "A     BB  MESSAGE",
        "long  x   a long message that…",
        "y         short",
    ]
    assert max(len(line) for line in text.splitlines()) == 30


def test_a_narrow_width_leaves_the_last_column_its_minimum() -> None:
    text = render_table(("NAME", "MESSAGE"), [("n" * 50, "m" * 40)], width=40)
    assert text.splitlines()[1] == "n" * 50 + "  " + "m" * (MIN_LAST - 1) + "…"
