"""The HTTP listeners' bounds on ``/metrics``, read at scrape time from their counts.

- ``opsmap_http_connections{listener}``: connections open (``main``, and ``operator`` with
  ``--metrics-listen``);
- ``opsmap_http_event_streams``: event streams open;
- ``opsmap_http_refused_total{listener,reason}``: connections and requests refused:
  ``connections`` (every connection busy: ``503`` on the socket), ``reserved`` (not a probe,
  on a slot kept for them), ``client_streams`` and ``client_requests`` (a client over its
  share: ``429``);
- ``opsmap_http_dropped_total{listener,reason}``: connections closed by the server:
  ``send_timeout`` (the client read nothing), ``idle`` (its place taken by a new one).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from reconciler.server.clients import CLIENT_LIMITS
from reconciler.server.http import HttpEndpoint, Listener


class HttpCollector(Collector):
    """Reads ``endpoint``'s counts (plain numbers, written on the loop) in any thread."""

    def __init__(self, endpoint: HttpEndpoint) -> None:
        self.endpoint = endpoint

    def listeners(self) -> Iterator[tuple[str, Listener]]:
        yield "main", self.endpoint.main
        if self.endpoint.operator is not None:
            yield "operator", self.endpoint.operator

    def collect(self) -> Iterator[Metric]:
        connections = GaugeMetricFamily(
            "opsmap_http_connections", "HTTP connections open", labels=["listener"]
        )
        refused = CounterMetricFamily(
            "opsmap_http_refused",
            "HTTP connections and requests refused, by why",
            labels=["listener", "reason"],
        )
        dropped = CounterMetricFamily(
            "opsmap_http_dropped",
            "HTTP connections closed by the server, by why",
            labels=["listener", "reason"],
        )
        streams = 0
        for name, listener in self.listeners():
            count = listener.connections
            connections.add_metric([name], count.open)
            refused.add_metric([name, "connections"], count.refused)
            dropped.add_metric([name, "send_timeout"], count.dropped)
            dropped.add_metric([name, "idle"], count.evicted)
            clients = listener.app.get(CLIENT_LIMITS)
            if clients is not None:
                for reason, value in clients.refused.items():
                    refused.add_metric([name, reason], value)
                streams += sum(clients.open_streams.values())
        yield connections
        yield GaugeMetricFamily("opsmap_http_event_streams", "Event streams open", value=streams)
        yield refused
        yield dropped
