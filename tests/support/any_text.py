"""Hypothesis strategies for text from outside: any code point, and any bytes as OpsMap
reads them (decoded with ``surrogateescape``, as git paths and host output are).

``st.text()`` alone never draws a surrogate; the stores must hold those too (a byte that
is not UTF-8 is one), so :data:`ANY_TEXT` mixes in lone surrogates, NUL, backslashes and
the escape's own spelling (``\\0``, ``\\udc80``), which a reversible escape must keep apart.
"""

from __future__ import annotations

from hypothesis import strategies as st

ANY_BYTES = st.binary(max_size=64)
"""Raw bytes, as a host or git sends them."""

FROM_BYTES = ANY_BYTES.map(lambda b: b.decode("utf-8", "surrogateescape"))
"""Bytes as OpsMap decodes them: every byte that is not UTF-8 a lone surrogate."""

_TRICKY = st.sampled_from(["\\", "\0", "\\0", "\\\\", "\\udc80", "\\u0000", "\u2028", "\x85"])

ANY_TEXT = st.one_of(
    st.text(max_size=40),
    FROM_BYTES,
    st.lists(
        st.one_of(st.characters(categories=["Cs"]), st.characters(), _TRICKY), max_size=12
    ).map("".join),
)
"""Any Python str: all of Unicode, lone surrogates, NUL, and what an escape must not mix."""
