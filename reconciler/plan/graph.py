"""A map as a Mermaid graph: a node per component, an edge per dependency, status colours.

As the original product drew it: ``graph TD``, one node per component labelled with its
name, an arrow from each component to what it depends on, and classes ``ok``,
``warning``, ``error`` (plus ``unknown`` grey, and ``starting``/``stopping`` while an
action runs) taken from a running reconciler's ``/api/v1/status``. A dependency the map
does not declare (an external component) is drawn dashed.

Errors: :class:`GraphError`, one line for a user (an unreachable or unreadable status URL).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping

from reconciler.inert import one_line
from reconciler.model import Map

STATUS_PATH = "/api/v1/status"
DEFAULT_TIMEOUT_S = 5.0
MAX_STATUS_BYTES = 64 * 1024 * 1024

STATUS_CLASSES: Mapping[str, str] = {
    "ok": "fill:#d4edda,stroke:#28a745",
    "warning": "fill:#fff3cd,stroke:#ffc107",
    "error": "fill:#f8d7da,stroke:#dc3545",
    "unknown": "fill:#e2e3e5,stroke:#6c757d",
    "starting": "fill:#cce5ff,stroke:#007bff",
    "stopping": "fill:#cce5ff,stroke:#007bff",
}
"""The classes of ``opsmap graph --status``: one per component status."""
CHANGE_CLASSES: Mapping[str, str] = {
    "added": "fill:#d4edda,stroke:#28a745",
    "changed": "fill:#fff3cd,stroke:#ffc107",
}
"""The classes of a plan's graphs: components a pull request adds or changes."""
EXTERNAL_CLASS = "external", "fill:#ffffff,stroke:#6c757d,stroke-dasharray:5 5"

MAX_LABEL_CHARS = 200
"""A node's label shows at most this many characters of a component's name."""
_LABEL_UNSAFE = re.compile(r"[^\w .,:()+=/'-]")
_SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
_RESERVED = {"end", "graph", "subgraph", "flowchart", "style", "class", "classdef", "click",
             "linkstyle", "default", "direction"}  # fmt: skip


class GraphError(Exception):
    """The status of a running reconciler could not be read; ``str()`` says why."""


def mermaid(
    map_: Map,
    *,
    classes: Mapping[str, str] | None = None,
    palette: Mapping[str, str] = STATUS_CLASSES,
) -> str:
    """The Mermaid source of ``map_``; ``classes`` gives some components a class of ``palette``."""
    classes = classes or {}
    declared: list[str] = [c.id for c in map_.components]
    external = sorted({d for c in map_.components for d in c.dependencies} - set(declared))
    ids = _node_ids([*declared, *external])
    lines = ["graph TD"]
    for component in map_.components:
        label = component.name or component.id
        node = f'    {ids[component.id]}["{_label(label)}"]'
        cls = classes.get(component.id)
        lines.append(node + (f":::{cls}" if cls in palette else ""))
    for name in external:
        lines.append(f'    {ids[name]}["{_label(name)} (external)"]:::{EXTERNAL_CLASS[0]}')
    for component in map_.components:
        for dependency in component.dependencies:
            lines.append(f"    {ids[component.id]} --> {ids[dependency]}")
    for cls_name, style in palette.items():
        lines.append(f"    classDef {cls_name} {style}")
    if external:
        lines.append(f"    classDef {EXTERNAL_CLASS[0]} {EXTERNAL_CLASS[1]}")
    return "\n".join(lines) + "\n"


def _node_ids(names: list[str]) -> dict[str, str]:
    """Component ids as Mermaid node ids: as they are when Mermaid reads them so, else ``nN``."""
    ids: dict[str, str] = {}
    used: set[str] = set()
    taken = set(names)
    for index, name in enumerate(names):
        node = name
        if not _SAFE_ID.fullmatch(name) or name.lower() in _RESERVED or name in used:
            node = f"n{index}"
            while node in used or node in taken:
                node = f"_{node}"
        ids[name] = node
        used.add(node)
    return ids


def _label(text: str) -> str:
    """Text inside ``["…"]`` that Mermaid reads as plain text, whatever the repo wrote.

    One line (line breaks as spaces, other control characters as visible escapes such as
    ``\\x1b``) of at most :data:`MAX_LABEL_CHARS`, then every character but letters, digits
    and a few plain punctuation marks as a Mermaid entity code (``#34;``): no quote or
    bracket can end the label, no backtick can open a Markdown string, no ``%%{init}%%``
    directive or ``click`` line can form, and no ``#name;`` of the repo's can decode to
    markup.
    """
    flat = one_line(" ".join(text.split()))
    if len(flat) > MAX_LABEL_CHARS:
        flat = flat[: MAX_LABEL_CHARS - 1] + "…"
    return _LABEL_UNSAFE.sub(lambda m: f"#{ord(m.group())};", flat)


def status_url(url: str) -> str:
    """``url`` itself if it ends with ``/api/v1/status``, else that path under it."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise GraphError(f"{url}: not an http(s) URL of a running OpsMap")
    if parsed.path.rstrip("/").endswith(STATUS_PATH):
        return url
    return urllib.parse.urlunsplit(parsed._replace(path=parsed.path.rstrip("/") + STATUS_PATH))


def fetch_statuses(
    url: str, map_name: str, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> dict[str, str]:
    """Each component's status in ``map_name``, from a running reconciler at ``url``."""
    full = status_url(url)
    try:
        with urllib.request.urlopen(full, timeout=timeout_s) as response:  # noqa: S310 (scheme checked)
            raw = response.read(MAX_STATUS_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise GraphError(f"{full}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise GraphError(f"{full}: unreachable: {exc.reason}") from exc
    except (TimeoutError, OSError) as exc:
        raise GraphError(f"{full}: unreachable: {exc}") from exc
    if len(raw) > MAX_STATUS_BYTES:
        raise GraphError(f"{full}: the status is larger than {MAX_STATUS_BYTES // 1048576} MiB")
    try:
        status = json.loads(raw)
        maps = status["maps"]
        found = next((m for m in maps if m.get("name") == map_name), None)
        if found is None:
            return {}
        return {
            str(c["id"]): str(c["status"])
            for c in found.get("components", [])
            if isinstance(c, dict) and "id" in c and "status" in c
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise GraphError(f"{full}: not an OpsMap status document ({exc})") from exc


def status_classes(map_: Map, statuses: Mapping[str, str]) -> dict[str, str]:
    """Every component's class: its status, ``unknown`` when the status does not say."""
    return {
        c.id: statuses.get(c.id, "unknown") if statuses.get(c.id) in STATUS_CLASSES else "unknown"
        for c in map_.components
    }
