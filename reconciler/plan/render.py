"""The plan as Markdown (a PR comment, a step summary) and as JSON, from one document.

The Markdown comes from ``templates/plan.md.j2`` (package data, read with
:mod:`importlib.resources`), rendered from :meth:`Plan.to_json`, so both carry the same
content. Every value the template shows is made inert (:mod:`reconciler.inert`): through
one of the filters, and otherwise by the environment's ``finalize``, so a value the
template forgets to filter is still plain text. It starts with :data:`MARKER`, the hidden
line CI finds its sticky comment by, and stays under :data:`MAX_MARKDOWN_CHARS` (GitHub's
limit for a comment is 65,536). To fit, prose goes first, level by level (graphs, long
values, component and binding lists, commands); the verdicts stay whole (rights gained and
lost with their subjects, requests with their decision, inventory changes) unless they
alone are too long, and then the rows cut are counted in a line that says so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup

from reconciler.findings import Finding, Severity
from reconciler.inert import code_fence, code_span, for_markdown
from reconciler.plan.build import Plan

MARKER = "<!-- opsmap-plan -->"
MAX_MARKDOWN_CHARS = 65_000
_FENCE = re.compile(r"^(`{3,})")


class _Level:
    """How much prose a rendering keeps."""

    def __init__(self, chars: int | None, rows: int | None, *, graphs: bool, commands: bool):
        self.chars, self.rows, self.graphs, self.commands = chars, rows, graphs, commands


LEVELS = (
    _Level(None, None, graphs=True, commands=True),
    _Level(2000, 200, graphs=False, commands=True),
    _Level(300, 50, graphs=False, commands=True),
    _Level(80, 10, graphs=False, commands=False),
)
"""Tried in turn until the text fits: each cuts more prose, none cuts a verdict."""


MAX_JSON_VALUE_CHARS = 10_000
"""A string in the JSON plan (a description, a command, a field's value) is cut to this."""


def render_json(plan: Plan) -> str:
    """The whole plan as JSON, each string of the repo's cut to :data:`MAX_JSON_VALUE_CHARS`.

    The graphs are whole (a cut one would not parse); they grow with the map, not with
    any one value.
    """
    document = plan.to_json()
    graphs = document.pop("graphs")
    capped = _capped(document, MAX_JSON_VALUE_CHARS)
    return json.dumps({**capped, "graphs": graphs}, indent=2, ensure_ascii=False) + "\n"


def render_markdown(plan: Plan, *, limit: int = MAX_MARKDOWN_CHARS) -> str:
    """The plan in Markdown, at most ``limit`` characters."""
    document = plan.to_json()
    text = ""
    for level in LEVELS:
        text = _render(document, level, verdicts=None)
        if len(text) <= limit:
            return text
    # The verdicts alone are too long: keep as many rows of each list as fit.
    low, high = 0, max(_verdict_count(document), 1)
    best = _render(document, LEVELS[-1], verdicts=0)
    while low <= high:
        middle = (low + high) // 2
        candidate = _render(document, LEVELS[-1], verdicts=middle)
        if len(candidate) <= limit:
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best if len(best) <= limit else truncate(best, limit)


def _render(document: dict[str, Any], level: _Level, *, verdicts: int | None) -> str:
    shown = _capped(document, level.chars) if level.chars is not None else document
    if not level.graphs:
        shown = {**shown, "graphs": {}}
    return _template().render(
        plan=shown,
        rows=level.rows,
        verdict_rows=verdicts,
        commands=level.commands,
        shortened=level is not LEVELS[0] or verdicts is not None,
        marker=_md(MARKER),
    )


def _verdict_count(document: dict[str, Any]) -> int:
    rights, inventory = document["rights"], document["inventory"]
    return max(
        len(rights["gained"]),
        len(rights["lost"]),
        len(rights["groups"]),
        len(inventory["hosts"]),
        len(inventory["selections"]),
        len(document["requests"]["added"]),
    )


def _capped(value: Any, chars: int) -> Any:
    """``value`` with every string cut to ``chars`` characters (a note says how many more)."""
    if isinstance(value, str):
        if len(value) <= chars:
            return value
        return f"{value[:chars]}… ({len(value) - chars} more characters)"
    if isinstance(value, dict):
        return {key: _capped(item, chars) for key, item in value.items()}
    if isinstance(value, list):
        return [_capped(item, chars) for item in value]
    return value


def render_findings_markdown(
    findings: Sequence[Finding], *, head: str, limit: int = MAX_MARKDOWN_CHARS
) -> str:
    """Why there is no plan, as the comment CI posts in its place: the findings, inert."""
    errors = sum(f.severity is Severity.ERROR for f in findings)
    header = (
        f"{MARKER}\n## OpsMap plan\n\nNo plan: {code_span(head)} does not validate: "
        f"**{errors} error(s)**, {len(findings) - errors} warning(s).\n\n"
        "| Where | | Rule | Message |\n|---|---|---|---|\n"
    )
    rows = [
        f"| {code_span(_cut(str(f.location), 300))} | {f.severity.value} | "
        f"{code_span(f.code)} | {for_markdown(_cut(f.message, 1000))} |\n"
        for f in findings
    ]
    text, budget = header, limit - len(header) - 200
    for index, row in enumerate(rows):
        if len(row) > budget:
            text += (
                f"\n_{len(rows) - index} more finding(s) not shown — "
                "run `opsmap validate` locally._\n"
            )
            break
        text += row
        budget -= len(row)
    return text


def render_error_markdown(message: str) -> str:
    """Why ``opsmap plan`` made no plan (a ref, a repo), as the comment CI posts instead."""
    return f"{MARKER}\n## OpsMap plan\n\nNo plan: {for_markdown(_cut(message, 2000))}\n"


def _cut(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters at a line end, open blocks closed, with a note."""
    note = (
        "\n> [!WARNING]\n> This plan is longer than fits here and was truncated. "
        "Run `opsmap plan --format json` for all of it (CI keeps it as an artifact).\n"
    )
    budget = limit - len(note) - 64
    cut = text[:budget]
    cut = cut[: cut.rfind("\n") + 1] if "\n" in cut else ""
    closing = []
    fence = None
    for line in cut.splitlines():
        match = _FENCE.match(line)
        if match and (fence is None or line.strip() == fence):
            fence = match.group(1) if fence is None else None
    if fence is not None:
        closing.append(fence)
    opened = cut.count("<details") - cut.count("</details>")
    closing.extend(["</details>"] * max(opened, 0))
    return cut + "".join(f"{line}\n" for line in closing) + note


@cache
def _template() -> jinja2.Template:
    source = resources.files("reconciler.plan").joinpath("templates", "plan.md.j2")
    environment = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=True,
        finalize=_inert,
    )
    environment.filters.update(text=text, code=code, fence=fence, short=short, value=value)
    return environment.from_string(source.read_text(encoding="utf-8"))


def _inert(item: Any) -> Any:
    """What ``{{ … }}`` prints: a filter's or a macro's output as is, anything else inert."""
    return item if isinstance(item, Markup) else _md(for_markdown(_plain(item)))


def _md(inert: str) -> Markup:
    """Text already made inert, marked so that autoescape and ``finalize`` keep it."""
    return Markup(inert)  # noqa: S704 (made inert by reconciler.inert)


def _plain(item: Any) -> str:
    return item.unescape() if isinstance(item, Markup) else str(item)


def text(item: Any) -> Markup:
    """Plain text, inert in Markdown, in a table cell and in the HTML of a ``<summary>``."""
    return _md(for_markdown(_plain(item)))


def code(item: Any) -> Markup:
    """Inline code, fenced with more backticks than it holds; one line, pipes escaped."""
    return _md(code_span(_plain(item)))


def fence(item: Any, language: str = "") -> Markup:
    """A fenced code block holding ``value`` exactly, its fence longer than any inside."""
    return _md(code_fence(_plain(item), language))


def short(sha: str) -> Markup:
    return _md(for_markdown(sha[:12]))


def value(item: Any) -> Markup:
    """A field's value, as inline code (JSON for lists and mappings, none when absent)."""
    if item is None:
        return _md("_none_")
    if isinstance(item, str):
        return code(item)
    return code(json.dumps(item, ensure_ascii=False))
