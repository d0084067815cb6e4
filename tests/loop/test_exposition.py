"""The state gauges' kept lines (:mod:`reconciler.loop.exposition`): ``expose`` writes what
prometheus_client writes, byte for byte, in every format a client can ask for, scrape
after scrape while checks change, come and go, and with label values made to break lines.

The reference is the plain exposition: the encoder on the same registry with the same
snapshot, every line written anew (:data:`~reconciler.loop.metrics.SCRAPED` set as
``expose`` sets it, and nothing kept).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import pytest
from e2e_support import sample_value
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder
from snapshots import check, snapshot

from reconciler.loop.exposition import MAX_ENCODERS, KeptLines, encoder_key
from reconciler.loop.metrics import SCRAPED, Metrics, SnapshotCollector, expose
from reconciler.loop.view import ComponentView, HostView, MapView, Snapshot

ACCEPTS = [
    "",
    "text/plain",
    "application/openmetrics-text",
    "application/openmetrics-text; version=1.0.0; escaping=dots",
    "application/openmetrics-text; version=1.0.0; escaping=values",
    "text/plain; version=1.0.0; escaping=allow-utf-8",
    "text/plain; version=1.0.0; escaping=underscores",
]
HOSTILE = [
    'quo"te',
    "back\\slash",
    "new\nline",
    "\n# HELP opsmap_check_status fake\n# TYPE opsmap_check_status gauge",
    "ünï\u2028cödé",
    "} 1\nopsmap_x 2",
    "",
]


class Scraped:
    """A registry with the reconciler's metrics and a state collector of ``current``."""

    def __init__(self) -> None:
        self.current: Snapshot = snapshot()
        self.registry = CollectorRegistry()
        Metrics(self.registry)
        self.registry.register(SnapshotCollector(lambda: self.current))

    def fast(self, encoder: Callable[..., bytes]) -> bytes:
        return expose(self.registry, self.current, encoder)

    def plain(self, encoder: Callable[..., bytes]) -> bytes:
        token = SCRAPED.set(self.current)
        try:
            return encoder(self.registry)
        finally:
            SCRAPED.reset(token)


def fleet(names: list[str], *, hard: str = "OK", flapping: str = "") -> Snapshot:
    """Components named ``names``, each with a check on a host of each name."""
    components = tuple(
        ComponentView(
            id=name,
            name=None,
            type="service",
            status="ok" if hard == "OK" else "error",
            impacted_by=(),
            impacted_by_more=0,
            dependencies=(),
            checks=tuple(
                check(f"k{name}", host, hard, flapping=host == flapping) for host in names
            ),
        )
        for name in names
    )
    return dataclasses.replace(
        snapshot(),
        maps=(MapView("shop", "1", components),),
        hosts=tuple(HostView(n, n != flapping) for n in names),
    )


@pytest.mark.parametrize("accept", ACCEPTS)
def test_scrapes_are_what_prometheus_client_writes_while_checks_change(accept: str) -> None:
    encoder, _ = choose_encoder(accept)
    scraped = Scraped()
    steps = [
        fleet(HOSTILE),
        fleet(HOSTILE),  # all kept
        fleet(HOSTILE, hard="CRITICAL"),  # every check changes
        fleet(HOSTILE, hard="CRITICAL", flapping=HOSTILE[2]),  # one flaps, its host is down
        fleet(HOSTILE[:3], hard="CRITICAL"),  # components, checks and hosts gone
        fleet([*HOSTILE[:3], "back"], hard="CRITICAL"),  # and a new one
        dataclasses.replace(snapshot(), maps=(), hosts=()),  # nothing at all
        fleet(HOSTILE),
    ]
    for step in steps:
        scraped.current = step
        assert scraped.fast(encoder) == scraped.plain(encoder)


def test_a_changed_check_shows_in_the_next_scrape_and_a_removed_one_is_gone() -> None:
    scraped = Scraped()
    scraped.current = fleet(["a", "b"])
    text = scraped.fast(generate_latest).decode()
    assert sample_value(text, "opsmap_check_status", component="a", host="b") == 0.0
    assert sample_value(text, "opsmap_host_reachable", host="b") == 1.0

    scraped.current = fleet(["a", "b"], hard="CRITICAL", flapping="b")
    text = scraped.fast(generate_latest).decode()
    assert sample_value(text, "opsmap_check_status", component="a", host="b") == 2.0
    assert sample_value(text, "opsmap_check_flapping", component="a", host="b") == 1.0
    assert sample_value(text, "opsmap_check_flapping", component="a", host="a") == 0.0
    assert sample_value(text, "opsmap_component_status", component="a", status="error") == 1.0
    assert sample_value(text, "opsmap_host_reachable", host="b") == 0.0

    scraped.current = fleet(["a"], hard="CRITICAL")
    text = scraped.fast(generate_latest).decode()
    assert sample_value(text, "opsmap_check_status", component="a", host="a") == 2.0
    assert 'host="b"' not in text
    assert 'component="b"' not in text


def test_two_checks_alike_are_two_lines_as_prometheus_client_writes_them() -> None:
    """Label values alike (a repo that names a check twice) are two series, not one kept."""
    scraped = Scraped()
    twice = check("port", "h1", "OK")
    base = snapshot()
    db = dataclasses.replace(base.maps[0].components[0], checks=(twice, twice))
    scraped.current = dataclasses.replace(base, maps=(MapView("shop", "1", (db,)),))
    for _ in range(2):
        fast = scraped.fast(generate_latest)
        assert fast == scraped.plain(generate_latest)
        assert fast.count(b'opsmap_check_status{check="port"') == 2


def test_only_the_last_scrapes_lines_are_kept() -> None:
    kept = KeptLines()
    key = encoder_key(generate_latest)
    labels = ("host",)
    first = kept.render(generate_latest, key, "g", "doc", labels, [(("a",), 1.0), (("b",), 0.0)])
    assert first is not None
    assert first.body == b'g{host="a"} 1.0\ng{host="b"} 0.0\n'
    second = kept.render(generate_latest, key, "g", "doc", labels, [(("b",), 1.0)])
    assert second is not None
    assert second.body == b'g{host="b"} 1.0\n'
    assert set(second.lines) == {(("b",), 1.0)}


def test_encoders_are_told_apart_and_only_a_few_are_kept() -> None:
    kept = KeptLines()
    versions = [f"1.0.{n}" for n in range(MAX_ENCODERS + 3)]
    for version in versions:
        encoder, _ = choose_encoder(f"application/openmetrics-text; version={version}")
        assert kept.render(encoder, encoder_key(encoder), "g", "d", ("h",), [(("a",), 1.0)])
    assert len(kept._by_encoder) == MAX_ENCODERS
    again, _ = choose_encoder(f"application/openmetrics-text; version={versions[-1]}")
    assert encoder_key(again) in kept._by_encoder


def test_an_encoder_that_cannot_be_told_apart_gets_the_plain_exposition() -> None:
    scraped = Scraped()
    scraped.current = fleet(["a"])
    unhashable = functools.partial(generate_latest, escaping=["not", "hashable"])
    assert encoder_key(unhashable) is None
    assert scraped.fast(unhashable) == scraped.plain(unhashable)


def test_an_encoder_whose_lines_cannot_be_cut_gets_the_plain_exposition() -> None:
    """An encoder that writes something else than a line per sample: nothing is kept."""
    scraped = Scraped()
    scraped.current = fleet(["a", "b"])

    def doubled(registry: object) -> bytes:
        return generate_latest(registry).replace(b"} ", b"}\n ")  # type: ignore[arg-type]

    assert scraped.fast(doubled) == scraped.plain(doubled)
