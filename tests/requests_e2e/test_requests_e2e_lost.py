"""A lost connection, an unreachable host and a stop during an action, through ``opsmap run``.

Real parts only: a ``file://`` remote with merged request PRs, ``opsmap run`` as a
process, sshd servers of their own (whose serving processes a test SIGKILLs mid-action,
:meth:`Fleet.cut_connections`, while the action's command lives on), and what happened
read from the outside: the journal, the audit outbox and notes, ``/api/v1/status`` and
``/metrics``. Actions write to files of a site on the test host, so the tests can tell
whether a command went on after the connection dropped.

- the connection dropped once the command was sent: ``unknown`` (it may have run), never
  ``failed``; with another host that succeeded: still ``unknown``, with per-host results;
- the host could not be reached: ``failed``, ``not started: …``, nothing ran;
- SIGTERM while an action runs: the action has ``--stop-grace`` seconds to finish and its
  real outcome is recorded; past that it is recorded ``unknown`` before the process exits,
  once, and never again after a restart.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_support import counter, wait_for
from requests_e2e_support import (
    GROUPS,
    MAP,
    SAM,
    SRE_ADMIN,
    TINA,
    WAIT_S,
    Site,
    World,
    appending,
    component,
    map_yaml,
    one,
    policy_yaml,
    request_yaml,
    settings_yaml,
)
from sshd import Fleet, Sshd, free_port

pytestmark = [pytest.mark.sshd, pytest.mark.slow]

CUT_HOST, KEPT_HOST, GONE_HOST = "app-01", "app-02", "gone-01"


@dataclass
class LostWorld:
    """A world whose hosts are two sshd of its own (``app-01`` on ``cut``, ``app-02`` on
    ``kept``, both role app) and ``gone-01`` (role gone), where nothing listens."""

    world: World
    cut: Sshd
    kept: Sshd

    @property
    def site(self) -> Site:
        return self.world.site

    def files(self, actions: list[dict[str, Any]]) -> dict[str, str | bytes | None]:
        fleet = self.world.fleet
        hosts = [
            {"name": CUT_HOST, "port": self.cut.port, "labels": {"role": "app"}},
            {"name": KEPT_HOST, "port": self.kept.port, "labels": {"role": "app"}},
            {"name": GONE_HOST, "port": free_port(), "labels": {"role": "gone"}},
        ]
        inventory = {
            "defaults": {
                "transport": "ssh",
                "user": fleet.user,
                "identity_file": fleet.client_key.name,
                "known_hosts": "inventory/known_hosts",
                "connect_timeout_secs": 10,
                "login_timeout_secs": 20,
            },
            "hosts": [{"address": "127.0.0.1", **h} for h in hosts],
        }
        known = "".join(
            f"[127.0.0.1]:{s.port} {fleet.public_host_key(s)}\n" for s in (self.cut, self.kept)
        )
        return {
            "opsmap.yaml": settings_yaml(),
            "inventory/fleet.yaml": yaml.safe_dump(inventory, sort_keys=False),
            "inventory/known_hosts": known,
            f"maps/{MAP}.yaml": map_yaml(
                [component("batch", actions), component("gone", actions, role="gone")]
            ),
            "policies/groups.yaml": policy_yaml(groups=GROUPS),
            "policies/trading.yaml": policy_yaml([SRE_ADMIN]),
        }

    def setup(self, actions: list[dict[str, Any]], *extra_args: str) -> None:
        self.world.clone.commit("lost map", author=SAM, files=self.files(actions))
        self.world.start(*extra_args)
        self.world.wait_applied(self.world.push())

    def request(self, name: str, component_id: str, action: str, **kw: Any) -> tuple[str, str]:
        path, merge = self.world.request_pr(
            name, component_id, action, author=SAM, merger=TINA, **kw
        )
        self.world.push()
        return path, merge

    def wait_lines(self, name: str, count: int) -> list[str]:
        return wait_for(
            lambda: lines if len(lines := self.site.lines(name)) >= count else None,
            what=f"{count} line(s) in {name}\n{self.world.tail()}",
            timeout=WAIT_S,
        )


@pytest.fixture
def lost_world(tmp_path: Path, sshd_fleet: Fleet) -> Iterator[LostWorld]:
    cut, kept = sshd_fleet.start(2)
    world = World.create(
        tmp_path / "lost", sshd_fleet, cut, site_name=f"site-lost-{secrets.token_hex(4)}"
    )
    try:
        yield LostWorld(world, cut, kept)
    finally:
        world.close()
        shutil.rmtree(world.site.dir, ignore_errors=True)
        sshd_fleet.stop(cut)
        sshd_fleet.stop(kept)


def slow(site: Site, name: str, seconds: int) -> dict[str, Any]:
    """An action that says it started, sleeps, then says it finished (one line each)."""
    return {
        "name": name,
        "command": f"echo start >>{site.dir}/{name}-started.log; sleep {seconds};"
        f" echo done >>{site.dir}/{name}-done.log",
        "timeout_secs": 120,
    }


def status_of(world: World, path: str) -> dict[str, Any]:
    [entry] = [r for r in world.running.status()["requests"] if r["path"] == path]
    return dict(entry)


def test_a_connection_cut_mid_action_is_unknown_and_an_unreachable_host_failed_not_started(
    lost_world: LostWorld,
) -> None:
    site, world = lost_world.site, lost_world.world
    lost_world.setup([slow(site, "deploy", 3), appending(site, "mark")])

    path, merge = lost_world.request("deploy", "batch", "deploy")
    world.wait_request(path, ("running",))
    lost_world.wait_lines("deploy-started.log", 2)  # on both hosts
    assert world.fleet.cut_connections(lost_world.cut) > 0

    entry = world.wait_request(path)
    assert entry["state"] == "unknown", world.tail()
    records = world.records(path)
    assert [r["action"] for r in records] == [
        "request.authorized",
        "action.started",
        "action.unknown",
    ]
    details = one(records, "action.unknown")["details"]
    assert details["result"] == "unknown"
    assert details["results"] == {CUT_HOST: "unknown", KEPT_HOST: "succeeded"}
    by_host = {h["host"]: h for h in details["hosts"]}
    assert by_host[CUT_HOST]["started"] is True
    assert by_host[CUT_HOST]["exit_status"] is None
    assert by_host[CUT_HOST]["lost"]
    assert by_host[CUT_HOST]["reason"].startswith("outcome unknown: connection lost")
    assert by_host[KEPT_HOST]["exit_status"] == 0
    assert details["reason"].startswith(f"{CUT_HOST}: outcome unknown")

    shown = status_of(world, path)
    assert (shown["state"], shown["commit"]) == ("unknown", merge)
    assert shown["hosts"] == {CUT_HOST: "unknown", KEPT_HOST: "succeeded"}
    metrics = world.metrics()
    labels = {"map": MAP, "component": "batch", "action": "deploy"}
    assert counter(metrics, "opsmap_actions_total", result="unknown", **labels) == 1
    assert counter(metrics, "opsmap_actions_total", result="failed", **labels) == 0
    assert counter(metrics, "opsmap_requests_total", result="unknown") == 1
    assert counter(metrics, "opsmap_requests_total", result="failed") == 0
    # Right to say unknown: the command went on and finished on the host cut off too.
    assert lost_world.wait_lines("deploy-done.log", 2) == ["done", "done"]

    # A host that cannot be reached: the command never started, so that one is failed.
    gone, gone_merge = lost_world.request("gone", "gone", "mark")
    assert world.wait_request(gone)["state"] == "failed"
    failed = one(world.records(gone), "action.failed")["details"]
    assert failed["result"] == "failed"
    [host] = failed["hosts"]
    assert (host["host"], host["started"], host["result"]) == (GONE_HOST, False, "failed")
    assert host["reason"].startswith("not started: host unreachable: ")
    assert site.lines("mark.log") == []
    assert status_of(world, gone)["state"] == "failed"
    metrics = world.metrics()
    assert counter(metrics, "opsmap_requests_total", result="failed") == 1
    assert counter(metrics, "opsmap_requests_total", result="unknown") == 1

    notes = world.wait_notes(merge, ["request.authorized", "action.started", "action.unknown"])
    assert "action.failed" not in [r["action"] for r in notes]
    assert gone_merge != merge


def test_sigterm_lets_a_running_action_finish_and_records_its_real_outcome(
    lost_world: LostWorld,
) -> None:
    site, world = lost_world.site, lost_world.world
    lost_world.setup([slow(site, "deploy", 3), appending(site, "mark")])

    # one merge with two requests: deploy runs first (commit order, then path order)
    second = "requests/mark.yaml"
    path, _ = lost_world.request(
        "deploy",
        "batch",
        "deploy",
        hosts=[KEPT_HOST],
        extra={second: request_yaml("batch", "mark", hosts=[KEPT_HOST])},
    )
    lost_world.wait_lines("deploy-started.log", 1)
    assert world.stop() == 0
    # the process waited for the action before it exited
    assert world.journal(path)["state"] == "succeeded"  # type: ignore[index]
    assert site.lines("deploy-done.log") == ["done"]
    assert [r["action"] for r in world.records(path)][-1] == "action.succeeded"
    assert "waiting up to 30s for the running request to finish" in world.log.read_text()
    # ...and started nothing more: the merge's other request waits for the next start
    assert world.journal(second) is None
    assert site.lines("mark.log") == []

    world.start()
    assert world.wait_request(second)["state"] == "succeeded"
    assert site.lines("mark.log") == ["mark"]
    assert world.journal(path)["state"] == "succeeded"  # type: ignore[index]
    assert "action.unknown" not in [r["action"] for r in world.records(path)]
    assert site.lines("deploy-started.log") == ["start"]  # not run again


def test_sigterm_past_the_grace_records_unknown_once_and_never_again(
    lost_world: LostWorld,
) -> None:
    site, world = lost_world.site, lost_world.world
    lost_world.setup([slow(site, "deploy", 8), appending(site, "mark")], "--stop-grace", "1")

    path, merge = lost_world.request("deploy", "batch", "deploy", hosts=[KEPT_HOST])
    lost_world.wait_lines("deploy-started.log", 1)
    assert world.stop() == 0
    # recorded before the process exited, not left for the next start to guess
    assert world.journal(path)["state"] == "unknown"  # type: ignore[index]
    unknown = one(world.records(path), "action.unknown")
    assert unknown["commit"] == merge
    assert unknown["details"]["reason"].startswith("OpsMap was stopped while the action ran")
    assert "did not finish within 1s" in world.log.read_text()

    world.start()
    later, _ = lost_world.request("mark", "batch", "mark", hosts=[KEPT_HOST])
    assert world.wait_request(later)["state"] == "succeeded"
    assert world.journal(path)["state"] == "unknown"  # type: ignore[index]
    assert [r["action"] for r in world.records(path)].count("action.unknown") == 1
    assert status_of(world, path)["state"] == "unknown"
    assert site.lines("deploy-started.log") == ["start"]  # never run again
    # unknown was the truth: the command went on after OpsMap let go of it
    assert lost_world.wait_lines("deploy-done.log", 1) == ["done"]
