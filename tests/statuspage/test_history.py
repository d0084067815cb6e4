"""The audit records the page shows: kept as the real audit log stores them."""

from __future__ import annotations

from pathlib import Path

from reconciler.statuspage.pagesource import AuditHistory, RecordedAuditLog
from reconciler.store.sqlite import SqliteStore

SHA = "c" * 40


def test_each_stored_record_reaches_the_history(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state")
    try:
        history = AuditHistory(limit=2)
        log = RecordedAuditLog(store.outbox, history=history)
        for old, new in [("ok", "error"), ("error", "ok"), ("ok", "warning")]:
            log.append(
                action="component.status_changed",
                actor="opsmap",
                target={"map": "shop", "component": "db"},
                details={"from": old, "to": new},
                commit=SHA,
                revision=SHA,
            )
        log.append(
            action="request.denied",
            actor="mallory@example.com",
            target={"request": "requests/r.yaml", "map": "shop", "component": "db",
                    "action": "stop", "hosts": None},
            details={"decision": "deny", "rule": "default deny"},
            commit=SHA,
            revision=SHA,
        )  # fmt: skip
        items = history.items()
        assert [i.summary for i in items] == ["ok → warning", "deny: default deny"]  # bounded
        assert (items[1].request, items[1].requested) == ("requests/r.yaml", "stop")
        assert len(log.all_records()) == 4  # stored as by the plain audit log
    finally:
        store.close()
