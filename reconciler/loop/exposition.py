"""The state gauges' sample lines, written by prometheus_client and kept from scrape to scrape.

At fleet size the state gauges are most of ``/metrics`` (1,000 hosts x 5 checks: 11,000
series), and prometheus_client writes every sample line anew at each scrape (label
names checked, values escaped: about 6 µs a line, 70 ms of CPU per scrape here, seconds
on a loaded machine). Few of those lines change between two scrapes: a check's hard state
and flapping seldom do. So each line is kept, per encoder (text or OpenMetrics, and the
escaping the client asked for), and only the new ones are written: by the encoder itself,
all of a family's new samples in one call on a collector of that family alone, so that
every byte is still prometheus_client's. A scrape keeps only the lines it used: series
gone from the snapshot are gone from what is kept.

:func:`~reconciler.loop.metrics.expose` gives the scrape a :class:`Scrape`; the state
collector then yields each of those families without samples (prometheus_client writes
its ``# HELP`` and ``# TYPE`` lines where they belong) and hands their lines to the
scrape, which puts them under those lines. Anything unexpected in what the encoder wrote
(a line count, a header not found) drops back to the plain exposition.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

Encoder = Callable[..., bytes]
Sample = tuple[tuple[str, ...], float]
"""A gauge's label values (in the family's label order) and its value."""
MAX_ENCODERS = 4
"""Encoders whose lines are kept at once (an ``Accept`` header picks one: its version and
escaping are the client's text, so the oldest is dropped past this)."""


@dataclass(frozen=True, slots=True)
class FamilyLines:
    """What one encoder writes for one family: its header, its tail, its sample lines."""

    header: bytes
    """The ``# HELP`` and ``# TYPE`` lines."""
    tail: bytes
    """What follows the family when it is alone (OpenMetrics' ``# EOF``)."""
    lines: dict[Sample, bytes]
    """Each sample's line."""
    body: bytes = b""
    """The lines of the scrape that kept these, in its order."""


class KeptLines:
    """Each state family's lines per encoder, as the last scrape with that encoder used them.

    Read and replaced whole by the scrapes (worker threads, possibly two at once): the last
    to finish keeps its lines, and either's are right.
    """

    def __init__(self) -> None:
        self._by_encoder: dict[object, dict[str, FamilyLines]] = {}

    def render(
        self,
        encoder: Encoder,
        key: object,
        name: str,
        documentation: str,
        labels: Sequence[str],
        samples: Iterable[Sample],
    ) -> FamilyLines | None:
        """The family's lines for ``samples`` (in their order: ``body`` of the result), the
        kept ones reused and the others written by ``encoder``; None if the encoder's text
        cannot be cut into lines as expected."""
        families = self._by_encoder.get(key)
        if families is None:
            families = {}
            self._by_encoder[key] = families
            while len(self._by_encoder) > MAX_ENCODERS:
                self._by_encoder.pop(next(iter(self._by_encoder)), None)
        kept = families.get(name)
        if kept is None:
            kept = _empty(encoder, name, documentation, labels)
            if kept is None:
                return None
        old = kept.lines
        order = list(samples)
        lines = {sample: old[sample] for sample in order if sample in old}
        missing = [sample for sample in order if sample not in lines]
        if missing:
            written = _write(encoder, kept, name, documentation, labels, missing)
            if written is None:
                return None
            lines.update(zip(missing, written, strict=True))
        body = b"".join([lines[sample] for sample in order])
        fresh = FamilyLines(kept.header, kept.tail, lines, body)
        families[name] = fresh
        return fresh


def encoder_key(encoder: Encoder) -> object | None:
    """What tells encoders apart (``choose_encoder`` makes a new partial per request); None
    for an encoder that cannot be told apart from others (its lines are not kept)."""
    if isinstance(encoder, functools.partial):
        key: object = (encoder.func, encoder.args, tuple(sorted(encoder.keywords.items())))
    else:
        key = (encoder, (), ())
    try:
        hash(key)
    except TypeError:
        return None
    return key


@dataclass
class Scrape:
    """One exposition: its encoder, and the families' lines to put under their headers."""

    encoder: Encoder
    key: object
    parts: list[FamilyLines] = field(default_factory=list)

    def render(
        self,
        kept: KeptLines,
        name: str,
        documentation: str,
        labels: Sequence[str],
        samples: Iterable[Sample],
    ) -> bool:
        """Take the family's lines for :meth:`assemble`; False: yield it whole instead."""
        lines = kept.render(self.encoder, self.key, name, documentation, labels, samples)
        if lines is None:
            return False
        if lines.body:
            self.parts.append(lines)
        return True

    def assemble(self, text: bytes) -> bytes | None:
        """``text`` (the encoder's, each of those families without samples) with their
        lines under their headers; None if a header is not where it must be."""
        cuts: list[tuple[int, bytes]] = []
        for part in self.parts:
            at = 0 if text.startswith(part.header) else text.find(b"\n" + part.header) + 1
            if at == 0 and not text.startswith(part.header):
                return None  # a header is always at the start of a line
            cuts.append((at + len(part.header), part.body))
        cuts.sort(key=lambda cut: cut[0])
        pieces, start = [], 0
        for at, body in cuts:
            pieces += [text[start:at], body]
            start = at
        pieces.append(text[start:])
        return b"".join(pieces)


class _Alone(Collector):
    """One family, for the encoder to write on its own."""

    def __init__(self, family: GaugeMetricFamily) -> None:
        self._family = family

    def collect(self) -> Iterable[GaugeMetricFamily]:
        return [self._family]


def _empty(
    encoder: Encoder, name: str, documentation: str, labels: Sequence[str]
) -> FamilyLines | None:
    """The family's header and tail as ``encoder`` writes them (nothing kept yet)."""
    text = encoder(_Alone(GaugeMetricFamily(name, documentation, labels=list(labels))))
    end = text.find(b"\n# TYPE ")
    if not text.startswith(b"# HELP ") or end < 0:
        return None
    end = text.find(b"\n", end + 1) + 1
    if end == 0:
        return None
    return FamilyLines(text[:end], text[end:], {})


def _write(
    encoder: Encoder,
    kept: FamilyLines,
    name: str,
    documentation: str,
    labels: Sequence[str],
    samples: Sequence[Sample],
) -> list[bytes] | None:
    """The lines ``encoder`` writes for ``samples``, one each, in their order."""
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    for values, value in samples:
        family.add_metric(list(values), value)
    text = encoder(_Alone(family))
    if not text.startswith(kept.header) or not text.endswith(kept.tail):
        return None
    body = text[len(kept.header) : len(text) - len(kept.tail)]
    lines = body.split(b"\n")
    if lines.pop() != b"" or len(lines) != len(samples):
        return None
    return [line + b"\n" for line in lines]
