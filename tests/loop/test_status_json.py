"""The status JSON put together from kept parts (:mod:`reconciler.loop.statusjson`) is
:func:`~reconciler.loop.view.encode_json` of :meth:`~reconciler.loop.view.Snapshot.to_json`,
byte for byte, snapshot after snapshot while checks change, come and go."""

from __future__ import annotations

import dataclasses

from snapshots import check, snapshot

from reconciler.loop.statusjson import StatusJson
from reconciler.loop.view import ComponentView, MapView, Snapshot, encode_json

ODD = ['quo"te', "back\\slash", "new\nline", "ünï\u2028cödé\x00", "</script>", ""]


def with_checks(hard: str, names: list[str], **extra: object) -> Snapshot:
    base = snapshot(**extra)
    views = [check(n, h, hard, flapping=n == h) for n in names for h in names]
    db = dataclasses.replace(base.maps[0].components[0], checks=tuple(views))
    empty = ComponentView("empty", None, None, "unknown", (), 0, ("db",), ())
    return dataclasses.replace(
        base, maps=(MapView("shop", None, (db, empty)), MapView("none", "2", ()))
    )


def test_the_parts_make_the_document_while_checks_change() -> None:
    encoder = StatusJson()
    first = with_checks("OK", ODD, audit_pending=3)
    steps = [
        first,
        first,  # every part kept
        dataclasses.replace(first, maps=(*first.maps[:1], MapView("new", "1", ()))),
        with_checks("CRITICAL", ODD),  # every check new
        with_checks("CRITICAL", ODD[:2], requests=[{"path": "r.yaml"}]),  # some gone
        snapshot(),
        dataclasses.replace(snapshot(), maps=()),
    ]
    for step in steps:
        assert encoder.encode(step) == encode_json(step.to_json())


def test_a_changed_check_is_written_anew_and_only_shown_views_are_kept() -> None:
    encoder = StatusJson()
    old = with_checks("OK", ["a"])
    encoder.encode(old)
    new = with_checks("CRITICAL", ["a"])
    assert b'"hard_state":"CRITICAL"' in encoder.encode(new)
    kept = [view for view, _text in encoder._parts.values()]
    assert kept == list(new.maps[0].components[0].checks)


def test_a_viewers_part_reads_the_kept_parts_and_keeps_none() -> None:
    encoder = StatusJson()
    everyone = with_checks("OK", ["a", "b"])
    encoder.encode(everyone)
    kept = dict(encoder._parts)
    part = dataclasses.replace(everyone, maps=everyone.maps[1:])
    assert encoder.encode(part, keep=False) == encode_json(part.to_json())
    assert encoder._parts == kept
