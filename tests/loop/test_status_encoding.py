"""The status document is JSON written in small pieces, so /healthz's thread gets the lock.

One call of the C encoder on a 2 MB document holds the interpreter lock for tens of
milliseconds; :func:`reconciler.loop.view.encode_json` must give the same bytes as one call,
with no single call encoding more than a few kilobytes of a 10,000-component map.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.loop import view

SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=80) | st.dictionaries(st.text(max_size=3), inner, max_size=80)
    ),
    max_leaves=400,
)


@given(VALUES)
def test_the_bytes_are_those_of_one_call(value: Any) -> None:
    assert view.encode_json(value) == json.dumps(value, separators=(",", ":")).encode() + b"\n"


def chain_status(n: int) -> dict[str, Any]:
    components = [
        {
            "id": f"c{i}",
            "name": f"component {i}",
            "status": "error",
            "impacted_by": [f"c{j}" for j in range(max(0, i - 10), i)],
            "dependencies": [f"c{i - 1}"] if i else [],
            "checks": [{"name": "probe", "host": "h", "state": "CRITICAL"}] if i == 0 else [],
        }
        for i in range(n)
    ]
    return {"maps": [{"name": "chain", "components": components}], "hosts": [], "requests": []}


def test_a_large_map_is_never_encoded_in_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    dumps = json.dumps

    def recording(value: Any, **kwargs: Any) -> str:
        text = dumps(value, **kwargs)
        sizes.append(len(text))
        return text

    monkeypatch.setattr(view.json, "dumps", recording)
    document = chain_status(10_000)
    body = view.encode_json(document)
    monkeypatch.undo()
    assert body == dumps(document, separators=(",", ":")).encode() + b"\n"
    assert len(body) > 1_000_000
    assert max(sizes) < 50_000  # a run of 64 components, not the map
