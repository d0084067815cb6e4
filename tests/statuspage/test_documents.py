"""The page's JSON documents: counts, graph, component details, requests, viewer filtering."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from page_support import HOSTILE, SHA, snapshot, write_repo

from reconciler.audit.record import GENESIS_HASH, AuditRecord
from reconciler.model.request import Request
from reconciler.model.settings import Forge
from reconciler.policy.visibility import Visibility
from reconciler.statuspage.access import Access
from reconciler.statuspage.asking import Asking
from reconciler.statuspage.component import component_doc, find_component
from reconciler.statuspage.documents import find_map, map_doc, overview
from reconciler.statuspage.pagesource import AuditHistory, HistoryItem
from reconciler.statuspage.requestsdoc import requests_doc
from reconciler.store.protocol import JournalEntry

DAY = dt.date(2026, 12, 2)


def test_overview_counts_revision_hosts_audit(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo")
    doc = overview(snapshot(rejected=True), repo, Access(None, Visibility(repo)))
    assert doc["viewer"] == {"user": None, "filtered": False}
    shop = next(m for m in doc["maps"] if m["name"] == "shop")
    assert shop["counts"]["error"] == 1
    assert shop["counts"]["ok"] == 1
    assert shop["impacted"] == 1
    assert shop["description"] == "The shop"
    assert doc["revision"]["rejected"] is True
    assert doc["revision"]["errors"][0] == {
        "file": "maps/shop.yaml", "line": 7, "column": 3, "code": "E9", "message": "bad thing"
    }  # fmt: skip
    assert doc["hosts"] == [{"name": "h1", "reachable": True}, {"name": "h2", "reachable": False}]
    assert doc["audit"] == {"pending": 3, "unstored": 0, "delivery_error": "remote down"}


def test_a_filtered_viewer_sees_only_what_it_may_view(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo")
    olga = Access("olga@example.com", Visibility(repo), filtered=True)
    doc = overview(snapshot(rejected=True), repo, olga)
    assert [m["name"] for m in doc["maps"]] == ["shop"]
    assert doc["hosts"] == [{"name": "h1", "reachable": True}]  # h2 only serves 'secret'
    assert doc["revision"]["errors"] == []
    assert doc["revision"]["error_count"] == 1
    assert find_map(snapshot(), "secret", olga) is None
    nobody = Access("stranger@example.com", Visibility(repo), filtered=True)
    assert overview(snapshot(), repo, nobody)["maps"] == []
    no_identity = Access(None, Visibility(repo), filtered=True)  # around the proxy
    assert overview(snapshot(), repo, no_identity)["maps"] == []
    assert overview(snapshot(), repo, no_identity)["hosts"] == []


def test_map_graph_nodes_external_impacted_and_layout(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo")
    a = Access(None, Visibility(repo))
    view = find_map(snapshot(), "shop", a)
    assert view is not None
    doc = map_doc(view, repo, a)
    nodes = {n["id"]: n for n in doc["graph"]["nodes"]}
    assert set(nodes) == {"db", "api", "zookeeper"}
    assert nodes["zookeeper"]["external"]
    assert not nodes["db"]["external"]
    assert nodes["api"]["impacted"]
    assert nodes["api"]["impacted_by"] == ["db"]
    assert nodes["db"]["status"] == "error"
    assert nodes["db"]["ok_checks"] == 0
    assert nodes["api"]["y"] < nodes["db"]["y"]  # the dependent above
    assert {(e["source"], e["target"]) for e in doc["graph"]["edges"]} == {
        ("api", "db"), ("api", "zookeeper")
    }  # fmt: skip


def test_component_doc_checks_actions_and_history(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo")
    olga = Access("olga@example.com", Visibility(repo), filtered=True)
    view = find_map(snapshot(), "shop", olga)
    assert view is not None
    found = find_component(view, "api", olga)
    assert found is not None
    record = AuditRecord.create(
        seq=1, id="r1", timestamp="2026-12-01T10:00:00Z", action="component.status_changed",
        actor="opsmap", target={"map": "shop", "component": "api"},
        details={"from": "ok", "to": "error"}, commit=SHA, revision=SHA, prev_hash=GENESIS_HASH,
    )  # fmt: skip
    other = AuditRecord.create(
        seq=2, id="r2", timestamp="2026-12-01T10:00:01Z", action="component.status_changed",
        actor="opsmap", target={"map": "shop", "component": "db"},
        details={"from": "ok", "to": "error"}, commit=SHA, revision=SHA, prev_hash=record.hash,
    )  # fmt: skip
    forge = Forge(kind="github", url="https://github.com/org/maps")
    model = repo.map("shop")
    assert model is not None
    doc = component_doc(
        view,
        found,
        model.component("api"),
        access=olga,
        asking=Asking("main", forge, olga.user, DAY),
        history=[HistoryItem.of(record), HistoryItem.of(other)],
    )
    assert doc["name"] == HOSTILE  # data, as is: the browser inserts it as text
    assert doc["checks"][0]["name"] == "http"
    assert doc["checks"][0]["hard_state"] == "OK"
    actions = {a["name"]: a for a in doc["actions"]}
    assert actions["restart"]["may"] is True
    assert "operator" in (actions["restart"]["rule"] or "")
    assert actions["flush"]["may"] is False
    assert "custom action" in (actions["flush"]["rule"] or "")
    assert [h["summary"] for h in doc["history"]] == ["ok → error"]
    assert doc["history"][0]["commit_url"] == f"https://github.com/org/maps/commit/{SHA}"
    assert doc["dependents"] == []
    assert doc["dependencies"] == ["db"]  # the external zookeeper is no component she sees


def test_request_text_command_and_forge_links() -> None:
    for kind in ("github", "gitlab"):
        forge = Forge(kind=kind, url="https://forge.example/org/maps")
        ask = Asking("main", forge, "olga@example.com", DAY).ask("shop", "api", "restart")
        assert ask["command"] == (
            "opsmap request restart shop/api --reason 'Say why this is needed.'"
        )
        request = Request.model_validate(yaml.safe_load(ask["text"]))
        assert (request.map, request.component, request.action) == ("shop", "api", "restart")
        assert ask["path"].startswith("requests/2026-12-02-restart-api-")
        assert ask["path"].endswith(".yaml")
        url = urlsplit(ask["forge_url"] or "")
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if kind == "github":
            assert url.path == "/org/maps/new/main"
            assert query["filename"] == ask["path"]
            assert query["value"] == ask["text"]
        else:
            assert url.path == "/org/maps/-/new/main"
            assert query["file_name"] == ask["path"]
            assert query["content"] == ask["text"]
            assert query["branch_name"] == ask["branch"]
    plain = Asking("main", None, None, DAY).ask("shop", "api", "restart")
    assert plain["forge_url"] is None


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/org/maps/",
        "javascript:alert(1)",
        "https://github.com/org/maps?x=1",
        "https://github.com/org/ma ps",
        "https://github.com",
    ],
)
def test_forge_url_is_validated(tmp_path: Path, url: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Forge(kind="github", url=url)


def test_forge_in_opsmap_yaml_reaches_settings(tmp_path: Path) -> None:
    forge = {"kind": "gitlab", "url": "https://gitlab.example/ops/maps"}
    repo = write_repo(tmp_path / "repo", settings={"forge": forge})
    assert repo.effective_settings.forge == Forge(**forge)  # type: ignore[arg-type]


def test_requests_doc_joins_journal_and_audit(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo")
    record = AuditRecord.create(
        seq=1, id="r1", timestamp="2026-12-01T10:00:00Z", action="request.authorized",
        actor="olga@example.com",
        target={"request": "requests/r.yaml", "map": "secret", "component": "vault",
                "action": "restart", "hosts": None},
        details={"decision": "allow", "rule": "admin"}, commit=SHA, revision=SHA,
        prev_hash=GENESIS_HASH,
    )  # fmt: skip
    entry = JournalEntry(
        path="requests/r.yaml", commit=SHA, requester="root@example.com", approver="bob@x",
        state="succeeded", rule="p.yaml:1:1: user root (admin) grants everything (admin)",
        created_at=1.0, finished_at=2.0, outcome={"results": {"h2": "succeeded"}},
        identity={"verified": False, "requester": {"verified": True}},
    )  # fmt: skip
    unknown = JournalEntry(
        path="requests/old.yaml", commit=SHA, requester=None, approver=None, state="denied",
        rule="no binding", created_at=1.0, finished_at=None, outcome=None,
    )  # fmt: skip
    history = AuditHistory()
    history.add(record)
    items = history.target
    everyone = Access(None, Visibility(repo))
    doc = requests_doc(
        [entry, unknown], items, access=everyone, asking=Asking("main", None, None, DAY)
    )
    first = doc["requests"][0]
    assert (first["map"], first["component"], first["action"]) == ("secret", "vault", "restart")
    assert first["hosts"] == [{"host": "h2", "result": "succeeded", "detail": None}]
    assert first["requester_verified"]
    assert not first["approver_verified"]
    assert doc["requests"][1]["decision"] == "deny"
    assert doc["requests"][1]["map"] is None
    olga = Access("olga@example.com", Visibility(repo), filtered=True)  # may not view 'secret'
    filtered = requests_doc(
        [entry, unknown], items, access=olga, asking=Asking("main", None, None, DAY)
    )
    assert filtered["requests"] == []
