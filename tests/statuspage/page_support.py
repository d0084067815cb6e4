"""A map repo on disk, its snapshot built by hand, and a PageSource over them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from reconciler.loop.view import CheckView, ComponentView, HostView, MapView, Snapshot
from reconciler.loop.viewers import Target
from reconciler.policy.visibility import Visibility
from reconciler.repo.loader import MapRepo, load_repo, read_tree
from reconciler.statuspage.pagesource import HistoryItem
from reconciler.store.protocol import JournalEntry

SHA = "a" * 40
HOSTILE = '<img src=x onerror="window.pwned=1">'

MAPS = {
    "shop": {
        "name": "shop",
        "version": "1",
        "description": "The shop",
        "components": [
            {
                "id": "db",
                "name": "Database",
                "type": "database",
                "hosts": {"labels": {"role": "x"}},
            },
            {
                "id": "api",
                "name": HOSTILE,
                "dependencies": ["db", "zookeeper"],
                "hosts": {"labels": {"role": "x"}},
                "actions": [
                    {"name": "restart", "command": "systemctl restart api"},
                    {"name": "flush", "command": "true", "confirmation_required": True},
                ],
            },
        ],
    },
    "secret": {
        "name": "secret",
        "components": [{"id": "vault", "hosts": {"labels": {"role": "x"}}}],
    },
}
POLICY = {
    "groups": {"ops": ["olga@example.com"]},
    "permissions": [
        {"group": "ops", "role": "operator", "maps": ["shop"]},
        {"user": "root@example.com", "role": "admin"},
    ],
}


def write_repo(root: Path, *, settings: dict[str, object] | None = None) -> MapRepo:
    (root / "maps").mkdir(parents=True)
    (root / "policies").mkdir()
    (root / "inventory").mkdir()
    for name, doc in MAPS.items():
        (root / "maps" / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    (root / "policies" / "p.yaml").write_text(yaml.safe_dump(POLICY))
    hosts = {"hosts": [{"name": "h1", "transport": "local", "labels": {"role": "x"}}]}
    (root / "inventory" / "i.yaml").write_text(yaml.safe_dump(hosts))
    if settings is not None:
        (root / "opsmap.yaml").write_text(yaml.safe_dump(settings))
    repo = load_repo(read_tree(root))
    assert not [f for f in repo.findings if f.severity.value == "error"], repo.findings
    return repo


def check(name: str, hard: str, *, host: str = "h1") -> CheckView:
    return CheckView(
        name=name, host=host, type="tcp", state=hard, hard_state=hard, state_type="hard",
        attempt=1, max_attempts=3, flapping=False, message=f"{name} is {hard}", value=None,
        duration_s=0.01, last_run="2026-12-01T10:00:00+00:00", last_state_change=None,
    )  # fmt: skip


def snapshot(*, rejected: bool = False) -> Snapshot:
    db = ComponentView(
        "db", "Database", "database", "error", (), 0, (), (check("port", "CRITICAL"),)
    )
    api = ComponentView(
        "api", HOSTILE, None, "ok", ("db",), 0, ("db", "zookeeper"), (check("http", "OK"),)
    )
    vault = ComponentView("vault", None, None, "ok", (), 0, (), (check("v", "OK", host="h2"),))
    from reconciler.findings import Finding, Location, Severity

    errors = (Finding(Location("maps/shop.yaml", 7, 3), Severity.ERROR, "E9", "bad thing"),)
    return Snapshot(
        last_applied_revision=SHA,
        last_attempted_revision="b" * 40 if rejected else SHA,
        last_applied_at=None,
        last_attempted_at=None,
        last_applied_epoch=None,
        revision_rejected=rejected,
        validation_errors=errors if rejected else (),
        validation_error_count=1 if rejected else 0,
        hosts=(HostView("h1", True), HostView("h2", False)),
        maps=(MapView("shop", "1", (db, api)), MapView("secret", None, (vault,))),
        extra={"audit_pending": 3, "audit_unstored": 0, "audit_delivery_error": "remote down"},
    )


@dataclass
class StaticSource:
    """A PageSource over fixed parts."""

    repo_: MapRepo
    snap: Snapshot
    items: Sequence[HistoryItem] = ()
    entries: Sequence[JournalEntry] = field(default_factory=list)
    branch_: str = "main"

    def snapshot(self) -> Snapshot:
        return self.snap

    def repo(self) -> MapRepo | None:
        return self.repo_

    def branch(self) -> str:
        return self.branch_

    def visibility(self) -> Visibility:
        return Visibility(self.repo_)

    def history(self) -> Sequence[HistoryItem]:
        return self.items

    def recent_requests(self, limit: int) -> Sequence[JournalEntry]:
        return list(self.entries)[:limit]

    def request_target(self, path: str) -> Target | None:
        found = None
        for item in self.items:
            if item.request == path and item.map is not None:
                found = Target(item.map, item.component or "*", item.requested)
        return found
