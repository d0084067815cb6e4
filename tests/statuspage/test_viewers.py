"""One rule for every viewer: :class:`Sight` (who sees which component, map, request,
event), :func:`seen_by` (the status document of one viewer) and the request targets the
audit history keeps. The end-to-end truth table is ``tests/reconciler_e2e/
test_e2e_viewer_truth.py``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from page_support import SHA, check, snapshot, write_repo

from reconciler.audit.record import GENESIS_HASH, AuditRecord
from reconciler.loop.statusjson import StatusJson
from reconciler.loop.view import ComponentView, HostView, MapView, Snapshot
from reconciler.loop.viewers import Target, seen_by
from reconciler.policy.visibility import EVERYTHING, NO_RIGHTS, NOTHING, Sight, Visibility
from reconciler.server.broker import EventBroker
from reconciler.server.identity import sees_event
from reconciler.statuspage.pagesource import AuditHistory

OPERATORS = ("fetch_error", "ssh_connections", "state_write_errors", "fleet", "audit_pending")


def test_each_persons_sight(tmp_path: Path) -> None:
    visibility = Visibility(write_repo(tmp_path / "repo"))
    olga = visibility.sight("Olga@Example.com ")
    assert olga.components == {("shop", "db"), ("shop", "api")}
    assert olga.maps == olga.whole == {"shop"}
    assert olga.person
    root = visibility.sight("root@example.com")
    assert root.maps == root.whole == {"shop", "secret"}
    stranger = visibility.sight("stranger@example.com")
    assert stranger.person
    assert not stranger.maps
    assert visibility.sight(None) is NOTHING
    assert visibility.sight("group:ops") is NO_RIGHTS
    assert Visibility(None).sight("olga@example.com") is NO_RIGHTS


def test_a_whole_map_request_needs_every_component() -> None:
    front_only = Sight(False, True, frozenset({("m", "front")}), frozenset({"m"}), frozenset())
    assert front_only.target("m", "front")
    assert not front_only.target("m", "back")
    assert not front_only.target("m", "*")  # its hosts and outcome are the back's too
    assert not front_only.target(None, "front")  # a target not known is not seen
    assert front_only.map("m")
    assert not front_only.map("other")
    everyone = EVERYTHING
    assert everyone.target(None, None)
    assert everyone.component("any", "thing")


def test_events_follow_their_component_or_target() -> None:
    broker = EventBroker()
    check = broker.publish("check", {"map": "m", "component": "front", "host": "h"})
    hidden = broker.publish("component", {"map": "m", "component": "back", "status": "ok"})
    whole = broker.publish("request", {"map": "m", "component": "*", "request": "r.yaml"})
    unknown = broker.publish("action", {"map": None, "component": None, "request": "r.yaml"})
    revision = broker.publish("revision", {"kind": "applied", "sha": SHA})
    sight = Sight(False, True, frozenset({("m", "front")}), frozenset({"m"}), frozenset())
    assert [sees_event(sight, e) for e in (check, hidden, whole, unknown, revision)] == [
        True, False, False, False, True
    ]  # fmt: skip
    assert [sees_event(NOTHING, e) for e in (check, revision)] == [False, False]
    assert all(sees_event(EVERYTHING, e) for e in (check, hidden, whole, unknown, revision))


def test_a_viewers_status_has_no_operators_field(tmp_path: Path) -> None:
    whole = dataclasses.replace(
        snapshot(rejected=True), fetch_error="git: no such remote", ssh_connections=7
    )
    everyone = json.loads(StatusJson().encode(whole))
    assert everyone["fetch_error"] == "git: no such remote"
    assert everyone["validation_errors"][0]["file"] == "maps/shop.yaml"
    olga = Visibility(write_repo(tmp_path / "repo")).sight("olga@example.com")
    seen = json.loads(StatusJson().encode(seen_by(whole, olga, target=lambda p: None)))
    assert not set(OPERATORS) & set(seen)
    assert seen["validation_errors"] == []
    assert seen["validation_error_count"] == 1
    assert [h["name"] for h in seen["hosts"]] == ["h1"]
    assert [m["name"] for m in seen["maps"]] == ["shop"]
    assert seen_by(whole, EVERYTHING, target=lambda p: None) is whole


def test_the_history_keeps_the_newest_requests_targets() -> None:
    history = AuditHistory(targets=2)

    def record(seq: int, request: str, target: dict[str, Any]) -> AuditRecord:
        return AuditRecord.create(
            seq=seq, id=f"r{seq}", timestamp="2026-12-01T10:00:00Z", action="request.authorized",
            actor="a@example.com", target={"request": request, **target}, details={},
            commit=SHA, revision=SHA, prev_hash=GENESIS_HASH,
        )  # fmt: skip

    history.add(record(1, "one.yaml", {"map": "m", "component": "c", "action": "restart"}))
    history.add(record(2, "one.yaml", {}))  # action.unknown names no map: the target stays
    assert history.target("one.yaml") == Target("m", "c", "restart")
    history.add(record(3, "two.yaml", {"map": "m", "component": "*", "action": "start"}))
    history.add(record(4, "three.yaml", {"map": "n", "component": "d", "action": "stop"}))
    assert history.target("one.yaml") is None  # the oldest, forgotten
    assert history.target("two.yaml") == Target("m", "*", "start")


names = st.text(max_size=6)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_seen_by_shows_exactly_what_the_sight_sees(data: st.DataObject) -> None:
    """Any names (all of Unicode), any sight: the viewer's document holds the maps and
    components seen, the hosts of their checks, dependencies and causes among them, and
    the requests whose target is seen; nothing else of the repo."""
    map_names = data.draw(st.lists(names, min_size=1, max_size=3, unique=True))
    maps, pairs, hosts_of = [], [], {}
    for m in map_names:
        ids = data.draw(st.lists(names, max_size=4, unique=True))
        components = []
        for c in ids:
            hosts = data.draw(st.lists(names, max_size=2))
            deps = tuple(data.draw(st.lists(st.sampled_from(ids) | names, max_size=3)))
            checks = tuple(check(f"k{i}", "OK", host=h) for i, h in enumerate(hosts))
            components.append(ComponentView(c, c, None, "ok", deps, 2, deps, checks))
            pairs.append((m, c))
            hosts_of[(m, c)] = set(hosts)
        maps.append(MapView(m, None, tuple(components)))
    seen_pairs = data.draw(st.sets(st.sampled_from(pairs))) if pairs else set()
    seen_maps = {m for m, _ in seen_pairs}
    whole = {m for m in seen_maps if all(p in seen_pairs for p in pairs if p[0] == m)}
    sight = Sight(False, True, frozenset(seen_pairs), frozenset(seen_maps), frozenset(whole))
    paths = data.draw(st.lists(names, max_size=4, unique=True))
    targets = {
        p: Target(
            data.draw(st.sampled_from(map_names)),
            data.draw(st.sampled_from(["*", *[c for _, c in pairs]]) if pairs else st.just("*")),
        )
        for p in paths
        if data.draw(st.booleans())
    }
    every_host = sorted(
        {h for hs in hosts_of.values() for h in hs} | set(data.draw(st.lists(names)))
    )
    whole_snapshot = Snapshot(
        last_applied_revision=SHA, last_attempted_revision=SHA, last_applied_at=None,
        last_attempted_at=None, last_applied_epoch=None, revision_rejected=False,
        validation_errors=(), validation_error_count=0,
        hosts=tuple(HostView(h, True) for h in every_host), maps=tuple(maps),
        extra={"requests": [{"path": p, "rule": p} for p in paths], "request_count": 99,
               "audit_pending": 3},
    )  # fmt: skip
    doc = json.loads(StatusJson().encode(seen_by(whole_snapshot, sight, target=targets.get)))

    assert [m["name"] for m in doc["maps"]] == [m for m in map_names if m in seen_maps]
    shown = {(m["name"], c["id"]) for m in doc["maps"] for c in m["components"]}
    assert shown == seen_pairs
    for m in doc["maps"]:
        ids = {c["id"] for c in m["components"]}
        for c in m["components"]:
            assert set(c["dependencies"]) <= ids
            assert set(c["impacted_by"]) <= ids
            assert c["impacted_by_more"] == 0
    assert {h["name"] for h in doc["hosts"]} == set().union(*(hosts_of[p] for p in seen_pairs))
    expected = [p for p in paths if p in targets and sight.target(*targets[p][:2])]
    assert [r["path"] for r in doc["requests"]] == expected
    assert doc["request_count"] == len(expected)
    assert not set(OPERATORS) & set(doc)
