"""Who counts as one client, and what is an event id: the pure parts of the limits."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import given
from hypothesis import strategies as st

from reconciler.server.clients import address_key
from reconciler.server.sse import BadLastEventId, last_event_id


@pytest.mark.parametrize(
    ("peer", "client"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),  # an IPv4 client on a dual-stack socket
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # the same host's other address
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        (None, "-"),
        ("/run/opsmap.sock", "/run/opsmap.sock"),
    ],
)
def test_a_client_is_an_address_or_an_ipv6_64(peer: str | None, client: str) -> None:
    assert address_key(peer) == client


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("", None), ("  ", None), ("0", 0), (" 42 ", 42), ("9" * 19, int("9" * 19))],
)
def test_last_event_id_reads_ascii_digits(header: str | None, expected: int | None) -> None:
    headers = {"Last-Event-ID": header} if header is not None else {}
    assert last_event_id(make_mocked_request("GET", "/api/v1/events", headers=headers)) == expected


@given(st.text(min_size=1))
def test_last_event_id_is_an_int_or_refused(value: str) -> None:
    """Any Unicode: an id, nothing, or :class:`BadLastEventId`; never another error."""
    request = make_mocked_request("GET", "/api/v1/events", headers={"Last-Event-ID": value})
    stripped = value.strip(" \t")
    try:
        got = last_event_id(request)
    except BadLastEventId:
        assert not (stripped.isascii() and stripped.isdigit() and len(stripped) <= 19)
        return
    assert got == (int(stripped) if stripped else None)


@pytest.mark.parametrize("value", ["²", "①", "١٢٣", "1e3", "-1", "0x1f", "9" * 20])
def test_a_last_event_id_that_is_no_id_is_refused(value: str) -> None:
    request = make_mocked_request("GET", "/api/v1/events", headers={"Last-Event-ID": value})
    with pytest.raises(BadLastEventId):
        last_event_id(request)
