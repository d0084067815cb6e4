"""``Masker``: every match hidden, line by line, on bounded input; generated texts."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.model.masking import MAX_INPUT_CHARS, REPLACEMENT, Masker, pattern_problem

TOKEN = r"token=[A-Za-z0-9]++"
texts = st.text(alphabet=st.sampled_from("ab=tokn \n0123AZ"), max_size=400)


@settings(max_examples=300, deadline=None)
@given(before=texts, secret=st.text(alphabet="abc123XYZ", min_size=1, max_size=40), after=texts)
def test_no_token_survives_masking(before: str, secret: str, after: str) -> None:
    text = f"{before}token={secret}{after}"
    masked = Masker.of([TOKEN]).apply(text)
    assert re.search(r"token=[A-Za-z0-9]", masked) is None
    assert REPLACEMENT in masked


def test_a_match_never_spans_lines_and_text_outside_is_kept() -> None:
    masker = Masker.of([TOKEN, r"(?i)password\s*+[:=]\s*+\S++"])
    text = "ok token=abc\nPassword: hunter2 tail\ntoken=\nend"
    assert masker.apply(text) == "ok ***\n*** tail\ntoken=\nend"


def test_input_is_cut_before_masking() -> None:
    masked = Masker.of([TOKEN]).apply("x" * (MAX_INPUT_CHARS + 10))
    assert masked.endswith("…[cut]")
    assert len(masked) == MAX_INPUT_CHARS + len("…[cut]")


def test_without_patterns_text_is_unchanged() -> None:
    assert Masker().apply("token=abc") == "token=abc"


def test_an_unsafe_pattern_is_never_compiled_into_a_masker() -> None:
    assert pattern_problem("(a+)+$") is not None
    assert Masker.of(["(a+)+$"]).patterns == ()


def test_a_fixed_count_of_alternatives_counts_as_their_power() -> None:
    """``(?:a|aa){30}b`` on 60 a's backtracks 2**30 ways: refused; {6} is 64 ways: fine."""
    assert "multiply" in (pattern_problem("(?:a|aa){30}b") or "")
    assert pattern_problem("(?:a|aa){6}b") is None
    assert "multiply" in (pattern_problem("x(?:(?:a|aa){3}){3}") or "")
    assert pattern_problem("(?:a|aa)++b") is None  # possessive: matched one way
    assert Masker.of(["(?:a|aa){30}b"]).patterns == ()
