"""The PromQL of a Grafana dashboard: every expression, Grafana's variables substituted,
and the names (metrics, labels, functions) each one uses (tests/packaging/test_dashboard.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

# What Grafana replaces before Prometheus sees an expression: intervals by a duration,
# the dashboard's variables (all multi-value, used in regex matchers) by "match all".
INTERVALS = ("$__rate_interval", "$__interval", "$__range")
VARIABLES = ("$job", "$instance", "$map")

FUNCTIONS = {
    "count", "sum", "max", "min", "avg", "rate", "increase", "histogram_quantile", "time",
    "vector", "topk", "changes", "label_values",
}  # fmt: skip
KEYWORDS = {"by", "on", "or", "and", "unless", "without", "ignoring", "bool", "offset"}
TARGET_LABELS = {"job", "instance"}  # added by Prometheus to every scraped series


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels inside


def expressions(dashboard: dict[str, Any]) -> dict[str, str]:
    """``where -> PromQL`` for every panel target; variables' queries are not PromQL."""
    found = {}
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            found[f"panel {panel['id']} {panel['title']!r} {target['refId']}"] = target["expr"]
    return found


def variable_queries(dashboard: dict[str, Any]) -> dict[str, str]:
    """``label_values(METRIC{…}, LABEL)`` queries of the query variables, by name."""
    return {
        v["name"]: v["query"]["query"]
        for v in dashboard["templating"]["list"]
        if v["type"] == "query"
    }


def substitute(expr: str) -> str:
    for name in INTERVALS:
        expr = expr.replace(name, "5m")
    for name in VARIABLES:
        expr = expr.replace(name, ".*")
    return expr


def names(expr: str) -> tuple[set[str], set[str], set[str]]:
    """(metric names, label names, function names) in ``expr``.

    Strings are dropped first. A label name is one before a matcher operator or inside
    ``by (…)`` / ``on (…)`` / ``ignoring (…)`` / ``without (…)``; an identifier before
    ``(`` is a function; any other identifier that is no keyword is a metric.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    grouping = r"(?:(?:by|without)\s*\([^)]*\)\s*)?"  # `sum by (map) (…)` is a call of sum
    functions = set(re.findall(rf"\b([A-Za-z_]\w*)\s*{grouping}\(", text)) - KEYWORDS
    labels: set[str] = set()
    for group in re.finditer(r"\b(?:by|on|ignoring|without)\s*\(([^)]*)\)", text):
        labels.update(n.strip() for n in group.group(1).split(",") if n.strip())
    text = re.sub(r"\b(by|on|ignoring|without)\s*\([^)]*\)", r"\1", text)
    labels.update(re.findall(r"\b([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", text))
    text = re.sub(r"\b[A-Za-z_]\w*\s*(?:=~|!~|!=|=)", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)  # range durations
    metrics = set(re.findall(r"(?<![\w.])([A-Za-z_:][\w:]*)", text)) - functions - KEYWORDS
    return metrics, labels, functions
