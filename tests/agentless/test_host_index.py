"""HostIndex selects exactly what a scan of every host selects, in inventory order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agentless.inventory import Host, HostIndex, select_hosts
from agentless.result import HostName

KEYS = st.sampled_from(["role", "env", "dc", "x"])
VALUES = st.sampled_from(["a", "b", "c"])
LABELS = st.dictionaries(KEYS, VALUES, max_size=4)


@given(st.lists(LABELS, max_size=12), st.lists(LABELS, max_size=8))
def test_index_equals_a_scan(labels: list[dict[str, str]], selectors: list[dict[str, str]]) -> None:
    hosts = [Host(name=HostName(f"h{i}"), address="x", labels=own) for i, own in enumerate(labels)]
    index = HostIndex(hosts)
    for selector in [*selectors, *selectors]:  # the second time from the memo
        assert list(index.select(selector)) == select_hosts(hosts, selector)


def test_an_empty_selector_selects_none() -> None:
    hosts = [Host(name=HostName("h"), address="x", labels={"role": "a"})]
    assert HostIndex(hosts).select({}) == ()
    assert HostIndex(hosts).select(None) == ()
    assert HostIndex(hosts).select({"role": "a"}) == tuple(hosts)
