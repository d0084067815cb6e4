"""The plan as Markdown (a PR comment, a step summary) and as JSON, from one document.

The Markdown comes from ``templates/plan.md.j2`` (package data, read with
:mod:`importlib.resources`), rendered from :meth:`Plan.to_json`, so both carry the same
content. It starts with :data:`MARKER`, the hidden line CI finds its sticky comment by, and
stays under :data:`MAX_MARKDOWN_CHARS` (GitHub's limit for a comment is 65,536): long
lists are cut first, then the text itself, with a note saying so.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

import jinja2

from reconciler.plan.build import Plan

MARKER = "<!-- opsmap-plan -->"
MAX_MARKDOWN_CHARS = 65_000
ROW_LIMITS = (None, 200, 50, 10)
"""Rows shown per list, tried in turn until the text fits."""
_FENCE = re.compile(r"^(`{3,})")


def render_json(plan: Plan) -> str:
    return json.dumps(plan.to_json(), indent=2, ensure_ascii=False) + "\n"


def render_markdown(plan: Plan, *, limit: int = MAX_MARKDOWN_CHARS) -> str:
    """The plan in Markdown, at most ``limit`` characters."""
    document = plan.to_json()
    text = ""
    for rows in ROW_LIMITS:
        text = _template().render(plan=document, rows=rows, marker=MARKER)
        if len(text) <= limit:
            return text
    return truncate(text, limit)


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
    environment = jinja2.Environment(  # noqa: S701 (Markdown, escaped by the filters below)
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(text=text, code=code, fence=fence, short=short, value=value)
    return environment.from_string(source.read_text(encoding="utf-8"))


def text(value: Any) -> str:
    """Plain text safe in Markdown and in a table cell: no HTML, no pipes, one line."""
    flat = " ".join(str(value).split())
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "&#124;")):
        flat = flat.replace(char, entity)
    return flat


def code(value: Any) -> str:
    """Inline code, fenced with more backticks than it holds; one line, pipes escaped."""
    flat = " ".join(str(value).split())
    ticks = "`" * (max((len(m) for m in re.findall(r"`+", flat)), default=0) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{ticks}{pad}{flat}{pad}{ticks}".replace("|", "\\|")


def fence(value: Any, language: str = "") -> str:
    """A fenced code block holding ``value`` exactly, its fence longer than any inside."""
    body = str(value).rstrip("\n")
    longest = max((len(m) for m in re.findall(r"`{3,}", body)), default=2)
    ticks = "`" * (longest + 1)
    return f"{ticks}{language}\n{body}\n{ticks}"


def short(sha: str) -> str:
    return sha[:12]


def value(item: Any) -> str:
    """A field's value, as inline code (JSON for lists and mappings, none when absent)."""
    if item is None:
        return "_none_"
    if isinstance(item, str):
        return code(item)
    return code(json.dumps(item, ensure_ascii=False))
