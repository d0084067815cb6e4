"""The request processor at its seams: FakeTransport under the real ActionRunner, a
VirtualClock for every wait, a real git remote and a real SQLite journal and outbox.

Each test merges requests by different people into a small map repo, runs
:meth:`RequestProcessor.process` on the new head, and reads what the processor decided
from the journal, the audit records, the counters and the commands the transport was
sent. No test sleeps on a schedule: completion checks are polled in virtual time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from gitrepos import BareRepo, Clone, Person
from request_counts import Counts
from requests_e2e_support import (
    DMITRI,
    ERIN,
    GROUPS,
    MAP,
    SAM,
    SRE_ADMIN,
    TINA,
    component,
    map_yaml,
    policy_yaml,
    request_yaml,
    settings_yaml,
)

from agentless.inventory import Host
from agentless.result import CommandResult
from agentless.testing import FakeTransport, reply
from reconciler.actions import ActionRunner
from reconciler.audit import AuditLog, AuditRecord, verify_chain
from reconciler.clock import VirtualClock
from reconciler.git.mirror import GitSource
from reconciler.requests.processor import CURSOR_KEY, RequestProcessor
from reconciler.store.sqlite import SqliteStore

REAL_WAIT_S = 30.0
"""Bound on what runs in real time (git in threads): a hang guard only."""
OPERATORS = {"group": "trading-ops", "role": "operator", "maps": [MAP]}
INVENTORY = {
    "hosts": [
        {"name": "app-01", "transport": "local", "labels": {"role": "app"}},
        {"name": "app-02", "transport": "local", "labels": {"role": "app"}},
        {"name": "db-01", "transport": "local", "labels": {"role": "db"}},
    ]
}


Handler = Callable[[Host, str, float], CommandResult]


def exits(status_of: Callable[[str, str], int]) -> Handler:
    """A transport handler: each command exits as ``status_of(host name, command)`` says."""

    def handle(host: Host, command: str, timeout: float) -> CommandResult:
        status = status_of(str(host.name), command)
        return reply(host, command, exit_status=status, duration_s=0.001)

    return handle


@dataclass
class Harness:
    clone: Clone
    remote: BareRepo
    base: str
    tmp_path: Path
    prs: int = 0

    def merge(self, files: dict[str, str], *, author: Person, merger: Person | None) -> str:
        """A pull request adding ``files``, merged by ``merger`` (None: committed directly)."""
        if merger is None:
            sha = self.clone.commit("direct", author=author, files=dict(files))
        else:
            self.prs += 1
            branch = f"pr-{self.prs}"
            _, sha = self.clone.pull_request(branch, dict(files), author=author, merger=merger)
        self.clone.push()
        return sha

    def process(self, head: str, handler: Handler) -> Outcome:
        source = GitSource(self.remote.url, cache_dir=self.tmp_path / "cache", timeout_s=30)
        source.fetch()
        store = SqliteStore(self.tmp_path / "state")
        clock = VirtualClock()
        transport = FakeTransport(handler)
        outbox = AuditLog(store.outbox, clock=clock)
        counts = Counts()
        processor = RequestProcessor(
            source=source,
            journal=store.journal,
            auditor=outbox,
            executor=ActionRunner(transport, clock=clock),
            counters=counts,
            cursor=self.base,
            save_cursor=lambda sha: store.set_cursor(CURSOR_KEY, sha),
            applied_revision=lambda: head,
            clock=clock,
        )

        async def scenario() -> None:
            task = asyncio.create_task(processor.process(head))
            deadline = time.monotonic() + REAL_WAIT_S
            while not task.done():
                assert time.monotonic() < deadline, "the processor did not finish"
                await clock.advance(1.0)
                await asyncio.sleep(0.01)  # git runs in threads, in real time
            await task

        try:
            asyncio.run(scenario())
            entries = {e.path: (e.state, e.rule) for e in store.journal.entries()}
            records = outbox.all_records()
            assert verify_chain(records) is None
            return Outcome(entries, records, counts, transport, store.get_cursor(CURSOR_KEY))
        finally:
            source.close()
            store.close()


@dataclass
class Outcome:
    journal: dict[str, tuple[str, str]]
    records: list[AuditRecord]
    counts: Counts
    transport: FakeTransport
    cursor: str | None

    def actions_of(self, path: str) -> list[str]:
        return [r.action for r in self.records if r.target.get("request") == path]

    def sent(self) -> list[tuple[str, str]]:
        return [(host, command) for host, command, _ in self.transport.calls]


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    remote = BareRepo.create(tmp_path / "remote.git")
    clone = Clone.create(remote, tmp_path / "work")
    actions = [
        {"name": "restart", "command": "systemctl restart api"},
        {
            "name": "start",
            "command": "systemctl start api",
            "async": True,
            "completion_check": {
                "type": "command",
                "config": {"command": "systemctl is-active api"},
                "interval_secs": 2,
                "timeout_secs": 30,
            },
        },
        {"name": "stop", "command": "systemctl stop api"},
        {"name": "purge", "command": "rm -rf /var/cache/api", "confirmation_required": True},
    ]
    db_actions = [
        {"name": "start", "command": "systemctl start postgresql"},
        {"name": "stop", "command": "systemctl stop postgresql"},
    ]
    base = clone.commit(
        "the map",
        author=SAM,
        files={
            "opsmap.yaml": settings_yaml(),
            "inventory/local.yaml": yaml.safe_dump(INVENTORY),
            "policies/groups.yaml": policy_yaml(groups=GROUPS),
            "policies/trading.yaml": policy_yaml([SRE_ADMIN, OPERATORS]),
            f"maps/{MAP}.yaml": map_yaml(
                [
                    component("api", actions, dependencies=["db"]),
                    component("db", db_actions, role="db"),
                ]
            ),
        },
    )
    clone.push()
    return Harness(clone, remote, base, tmp_path)


def test_an_approved_request_runs_once_on_each_host_and_is_audited(harness: Harness) -> None:
    path = "requests/restart.yaml"
    head = harness.merge({path: request_yaml("api", "restart")}, author=DMITRI, merger=TINA)
    outcome = harness.process(head, exits(lambda host, command: 0))
    assert sorted(outcome.sent()) == [
        ("app-01", "systemctl restart api"),
        ("app-02", "systemctl restart api"),
    ]
    state, rule = outcome.journal[path]
    assert state == "succeeded"
    assert rule.startswith(f"requester {DMITRI.email}: ")
    assert outcome.actions_of(path) == ["request.authorized", "action.started", "action.succeeded"]
    assert outcome.counts.requests == ["authorized", "succeeded"]
    assert outcome.counts.actions == [("api", "restart", "succeeded")]
    assert outcome.cursor == head


def test_an_action_that_exits_non_zero_on_one_host_fails_the_request(harness: Harness) -> None:
    path = "requests/restart.yaml"
    head = harness.merge({path: request_yaml("api", "restart")}, author=DMITRI, merger=TINA)
    outcome = harness.process(head, exits(lambda host, command: 3 if host == "app-02" else 0))
    assert outcome.journal[path][0] == "failed"
    failed = [r for r in outcome.records if r.action == "action.failed"]
    assert len(failed) == 1
    assert failed[0].details["results"] == {"app-01": "succeeded", "app-02": "failed"}


def test_a_completion_check_is_polled_on_the_clock_until_it_passes(harness: Harness) -> None:
    probes: list[str] = []

    def status(host: str, command: str) -> int:
        if "is-active" in command:
            probes.append(host)
            return 0 if probes.count(host) >= 3 else 3
        return 0

    path = "requests/start.yaml"
    head = harness.merge({path: request_yaml("api", "start")}, author=DMITRI, merger=TINA)
    outcome = harness.process(head, exits(status))
    assert outcome.journal[path][0] == "succeeded"
    assert sorted(probes) == ["app-01"] * 3 + ["app-02"] * 3, "polled until it passed, no more"


def test_a_request_the_requester_may_not_run_is_denied_and_nothing_runs(
    harness: Harness,
) -> None:
    path = "requests/stop-db.yaml"
    head = harness.merge({path: request_yaml("db", "purge")}, author=ERIN, merger=TINA)
    outcome = harness.process(head, exits(lambda host, command: 0))
    assert outcome.sent() == []
    state, rule = outcome.journal[path]
    assert state == "denied"
    assert rule.startswith("component 'db' has no action 'purge'")
    assert outcome.actions_of(path) == ["request.denied"]
    assert outcome.counts.requests == ["denied"]


def test_a_developer_without_the_right_is_denied_with_the_rule(harness: Harness) -> None:
    path = "requests/restart.yaml"
    head = harness.merge({path: request_yaml("api", "restart")}, author=ERIN, merger=TINA)
    outcome = harness.process(head, exits(lambda host, command: 0))
    assert outcome.sent() == []
    state, rule = outcome.journal[path]
    assert state == "denied"
    assert (
        rule
        == f"requester {ERIN.email}: default deny: no binding applies to {ERIN.email} on map {MAP}"
    )


def test_confirmation_needs_an_approver_other_than_the_requester(harness: Harness) -> None:
    path = "requests/purge.yaml"
    head = harness.merge({path: request_yaml("api", "purge")}, author=SAM, merger=None)
    outcome = harness.process(head, exits(lambda host, command: 0))
    assert outcome.sent() == []
    assert outcome.journal[path] == (
        "denied",
        "confirmation required: committed directly, no one approved it",
    )


def test_a_request_file_that_does_not_validate_is_denied_at_its_line(harness: Harness) -> None:
    path = "requests/typo.yaml"
    text = f"map: {MAP}\ncomponent: api\naction: restart\nreason: typo test\nhost: [app-01]\n"
    head = harness.merge({path: text}, author=DMITRI, merger=TINA)
    outcome = harness.process(head, exits(lambda host, command: 0))
    assert outcome.sent() == []
    state, rule = outcome.journal[path]
    assert state == "denied"
    assert rule.startswith(f"invalid request file: {path}:5:")
    assert "unknown key 'host'" in rule
    assert "did you mean 'hosts'" in rule


def test_a_whole_map_stop_stops_dependents_first(harness: Harness) -> None:
    path = "requests/stop-all.yaml"
    head = harness.merge({path: request_yaml("*", "stop")}, author=SAM, merger=TINA)
    outcome = harness.process(head, exits(lambda host, command: 0))
    order = [command for _, command in outcome.sent()]
    assert order.index("systemctl stop postgresql") > max(
        i for i, c in enumerate(order) if c == "systemctl stop api"
    )
    assert outcome.journal[path][0] == "succeeded"


def test_requests_merged_together_run_once_each_in_commit_order(harness: Harness) -> None:
    paths = [f"requests/{n}.yaml" for n in ("one", "two", "three")]
    head = ""
    for path in paths:
        head = harness.merge({path: request_yaml("api", "restart")}, author=DMITRI, merger=TINA)
    outcome = harness.process(head, exits(lambda host, command: 0))
    assert [p for p in outcome.journal] == paths
    assert all(state == "succeeded" for state, _ in outcome.journal.values())
    started = [r.target["request"] for r in outcome.records if r.action == "action.started"]
    assert started == paths
