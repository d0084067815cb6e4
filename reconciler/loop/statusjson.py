"""The ``/api/v1/status`` JSON of a snapshot, each check's part kept while its view is shown.

Most of a fleet's status is its checks (5,000 of them: 1.6 MB), and most checks' views are
the very objects the last snapshot showed (:class:`~reconciler.loop.view.CheckViews`
keeps them until their check changes). Writing each check again, a dict then its JSON,
was most of the encoding's CPU; here a view's JSON is written once and kept while the
view is shown, and the document is put together from those parts: the same bytes as
:func:`~reconciler.loop.view.encode_json` of :meth:`~reconciler.loop.view.Snapshot.to_json`
(a test holds them equal). In worker threads: snapshots and views are immutable.
"""

from __future__ import annotations

import dataclasses
import json

from reconciler.loop.view import CheckView, ComponentView, MapView, Raw, Snapshot, encode_json

_Parts = dict[int, tuple[CheckView, str]]
"""Each view's JSON, by the view's id (the view is held, so that its id is not reused)."""


class StatusJson:
    """Encodes snapshots, keeping the checks' parts of the last one that :meth:`encode`
    was told to keep (everyone's: a viewer's, a part of it, reads them only)."""

    def __init__(self) -> None:
        self._parts: _Parts = {}

    def encode(self, snapshot: Snapshot, *, keep: bool = True) -> bytes:
        """The status JSON of ``snapshot``, a newline after it."""
        old = self._parts
        parts: _Parts = {}
        maps = ",".join(_map(m, old, parts) for m in snapshot.maps)
        if keep:
            self._parts = parts  # what a scrape in another thread kept is replaced: both right
        return encode_json(snapshot.document(Raw("[" + maps + "]")))


def _map(m: MapView, old: _Parts, parts: _Parts) -> str:
    components = ",".join(_component(c, old, parts) for c in m.components)
    return _with_last(
        _compact({"name": m.name, "version": m.version, "components": []}), components
    )


def _component(c: ComponentView, old: _Parts, parts: _Parts) -> str:
    checks = []
    for view in c.checks:
        kept = old.get(id(view))
        if kept is None or kept[0] is not view:
            kept = (view, _compact(view.to_json()))
        parts[id(view)] = kept
        checks.append(kept[1])
    head = dataclasses.replace(c, checks=()).to_json()
    return _with_last(_compact(head), ",".join(checks))


def _with_last(text: str, items: str) -> str:
    """``text``, an object whose last key holds ``[]``, with ``items`` in that list."""
    if not text.endswith(":[]}"):
        raise ValueError(f"the last key of {text[:80]!r} is not an empty list")
    return text[:-2] + items + "]}"


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))
