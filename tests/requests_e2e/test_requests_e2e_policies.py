"""Merged requests judged by the policies, through one real ``opsmap run`` over real SSH.

One world for the whole module (its scenarios touch different components and request
files, and requests are processed one at a time in commit order): the seed's
trading-platform permissions, a self-granting PR, a PR that changes the command it asks
for, confirmation by a second person, and hostile strings in a request's fields.
"""

from __future__ import annotations

import pwd
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_support import counter
from requests_e2e_support import (
    APP_HOST,
    BOB_EXTERNAL,
    DMITRI,
    ERIN,
    FRANK,
    GROUPS,
    MAP,
    SAM,
    TINA,
    World,
    WorldFactory,
    alive,
    appending,
    batch_files,
    component,
    listening,
    map_yaml,
    one,
    policy_yaml,
    request_yaml,
    service_actions,
    trading_bindings,
)
from sshd import Fleet, Sshd

pytestmark = [pytest.mark.sshd, pytest.mark.slow]

OLD_EXPORT = "echo old >>{site}/export.log"
NEW_EXPORT = "echo new >>{site}/export.log"


class Trading:
    """The module's world: the trading map, its policies, and what the tests changed."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.site = world.site
        self.export_command = OLD_EXPORT.format(site=self.site.dir)
        self.extra_bindings: list[dict[str, Any]] = []

    def map_text(self) -> str:
        site, port = self.site, self.world.port
        return map_yaml(
            [
                component(
                    "api-server",
                    [
                        *service_actions(site, port("api")),
                        {
                            "name": "clear_cache",
                            "label": "Clear the cache",
                            "command": f"echo cleared >>{site.dir}/clear_cache.log",
                        },
                    ],
                    dependencies=["postgresql"],
                ),
                component("postgresql", service_actions(site, port("db")), role="db"),
                component("risk-engine", service_actions(site, port("risk"))),
                component("reports", [{"name": "export", "command": self.export_command}]),
                component(
                    "ledger",
                    [
                        {
                            "name": "purge",
                            "command": f"echo purged >>{site.dir}/purge.log",
                            "confirmation_required": True,
                        }
                    ],
                ),
                component(
                    "notifier",
                    [{"name": "notify", "command": f"echo notified >>{site.dir}/notify.log"}],
                ),
            ]
        )

    def policy_text(self) -> str:
        return policy_yaml([*trading_bindings(), *self.extra_bindings])

    def files(self) -> dict[str, str | bytes | None]:
        return {
            **self.world.base_files(),
            f"maps/{MAP}.yaml": self.map_text(),
            "policies/trading.yaml": self.policy_text(),
        }

    def run(self, *prs: tuple[str, str]) -> dict[str, dict[str, Any]]:
        """Push, then wait until every request of ``prs`` (path, merge) is finished."""
        self.world.push()
        return {path: self.world.wait_request(path) for path, _ in prs}


@pytest.fixture(scope="module")
def trading(
    tmp_path_factory: pytest.TempPathFactory, sshd_fleet: Fleet, fleet_server: Sshd
) -> Iterator[Trading]:
    root = tmp_path_factory.mktemp("trading")
    world = World.create(root, sshd_fleet, fleet_server, site_name=f"site-{root.name}")
    shared = Trading(world)
    try:
        world.clone.commit("the trading map", author=SAM, files=shared.files())
        head = world.push()
        world.start()
        world.wait_applied(head)
        # The services the scenarios act on run first (an admin's requests).
        prs = [
            world.request_pr(f"start-{c}", c, "start", author=SAM, merger=TINA)
            for c in ("postgresql", "api-server", "risk-engine")
        ]
        started = shared.run(*prs)
        assert [e["state"] for e in started.values()] == ["succeeded"] * 3, (
            f"{started}\n{world.tail()}"
        )
        yield shared
    finally:
        world.close()


def test_the_seed_permissions_hold_end_to_end(trading: Trading) -> None:
    """A developer's restart runs (a new pid), a trading-ops stop of the db is denied and
    audited with the binding that denied it, custom actions run for those allowed them,
    and the external viewer gets nothing."""
    world, site = trading.world, trading.site
    api, db = world.port("api"), world.port("db")
    api_pid, db_pid = site.pid(api), site.pid(db)
    assert alive(api_pid)
    assert alive(db_pid)
    restart = world.request_pr("dev-restart-api", "api-server", "restart", author=ERIN, merger=SAM)
    stop_db = world.request_pr("ops-stop-db", "postgresql", "stop", author=DMITRI, merger=SAM)
    dev_cache = world.request_pr(
        "dev-clear-cache", "api-server", "clear_cache", author=ERIN, merger=FRANK
    )
    ops_cache = world.request_pr(
        "ops-clear-cache", "api-server", "clear_cache", author=DMITRI, merger=TINA
    )
    bob = world.request_pr(
        "bob-restart-api", "api-server", "restart", author=BOB_EXTERNAL, merger=SAM
    )
    done = trading.run(restart, stop_db, dev_cache, ops_cache, bob)

    # The developer's restart ran: the service really restarted.
    assert done[restart[0]]["state"] == "succeeded", done
    assert done[restart[0]]["requester"] == ERIN.email
    assert done[restart[0]]["approver"] == SAM.email
    new_api_pid = site.pid(api)
    assert new_api_pid is not None
    assert new_api_pid != api_pid
    assert alive(new_api_pid)
    assert not alive(api_pid)
    assert listening(api)

    # trading-ops may not stop postgresql: denied by its binding, the db untouched.
    denied = done[stop_db[0]]
    assert denied["state"] == "denied", done
    for part in ("policies/trading.yaml", "group trading-ops (operator)", "denies 'stop'"):
        assert part in denied["rule"], denied
    assert site.pid(db) == db_pid
    assert alive(db_pid)
    assert listening(db)

    # Custom action: allowed to developers and trading-ops by explicit overrides.
    assert done[dev_cache[0]]["state"] == "succeeded", done
    assert done[ops_cache[0]]["state"] == "succeeded", done
    assert site.lines("clear_cache.log") == ["cleared", "cleared"]

    # bob@external.com only views.
    assert done[bob[0]]["state"] == "denied", done
    assert "default deny" in done[bob[0]]["rule"]

    # The refusal is audited, pushed as a note on the merge, with the rule naming the binding.
    notes = world.wait_notes(stop_db[1], ["request.denied"])
    record = one(notes, "request.denied")
    assert record["actor"] == DMITRI.email
    assert record["commit"] == stop_db[1]
    assert record["target"]["component"] == "postgresql"
    assert record["details"]["decision"] == "deny"
    assert record["details"]["rule"] == denied["rule"]
    assert "group trading-ops (operator)" in record["details"]["rule"]
    assert not [r for r in notes if r["action"].startswith("action.")]

    ran = world.wait_notes(restart[1], ["request.authorized", "action.started", "action.succeeded"])
    assert one(ran, "action.succeeded")["details"]["hosts"][0]["exit_status"] == 0
    metrics = world.metrics()
    assert (
        counter(
            metrics,
            "opsmap_actions_total",
            map=MAP,
            component="api-server",
            action="restart",
            result="succeeded",
        )
        == 1
    )
    assert counter(metrics, "opsmap_requests_total", result="denied") >= 2


def test_a_pr_cannot_grant_itself_the_right_it_uses(trading: Trading) -> None:
    """One PR gives its author 'stop' and asks to stop: judged at the merge's first parent,
    denied; the service keeps running. Once that grant is on the branch, a later request
    runs."""
    world, site = trading.world, trading.site
    risk = world.port("risk")
    pid = site.pid(risk)
    assert alive(pid)
    trading.extra_bindings.append(
        {
            "user": FRANK.email,
            "role": "viewer",
            "maps": [MAP],
            "overrides": {"components": {"risk-engine": {"allow": ["stop"]}}},
        }
    )
    grab = world.request_pr(
        "self-grant-stop-risk",
        "risk-engine",
        "stop",
        author=FRANK,
        merger=SAM,
        extra={"policies/trading.yaml": trading.policy_text()},
    )
    # A second PR, merged after it: frank joins sre-team and asks for a restart (which
    # sre-team has and the first PR's grant does not): judged before that membership.
    joined = world.request_pr(
        "self-join-restart-risk",
        "risk-engine",
        "restart",
        author=FRANK,
        merger=SAM,
        extra={
            "policies/groups.yaml": policy_yaml(
                groups={**GROUPS, "sre-team": [*GROUPS["sre-team"], FRANK.email]}
            )
        },
    )
    done = trading.run(grab, joined)
    for entry in done.values():
        assert entry["state"] == "denied", done
        assert entry["requester"] == FRANK.email
        assert "default deny" in entry["rule"], entry
    assert site.pid(risk) == pid
    assert alive(pid)
    assert listening(risk)
    denied = one(world.records(grab[0]), "request.denied")
    assert denied["details"]["base"] == world.clone.parents(grab[1])[0]

    later = world.request_pr("later-stop-risk", "risk-engine", "stop", author=FRANK, merger=SAM)
    [entry] = trading.run(later).values()
    assert entry["state"] == "succeeded", entry
    # Allowed now by what those two PRs merged: frank's own binding, or sre-team.
    assert "user frank@example.com" in entry["rule"] or "group sre-team" in entry["rule"], entry
    assert not alive(pid)
    assert not listening(risk)


def test_a_pr_that_changes_a_command_runs_the_old_one(trading: Trading) -> None:
    """The command is read at the merge's first parent: the old one runs; the new one
    applies to later requests."""
    world, site = trading.world, trading.site
    old_command = trading.export_command
    trading.export_command = NEW_EXPORT.format(site=site.dir)
    change = world.request_pr(
        "change-and-export",
        "reports",
        "export",
        author=SAM,
        merger=TINA,
        extra={f"maps/{MAP}.yaml": trading.map_text()},
    )
    [entry] = trading.run(change).values()
    assert entry["state"] == "succeeded", entry
    assert site.lines("export.log") == ["old"]
    [step] = one(world.records(change[0]), "action.started")["details"]["plan"]
    assert step["command"] == old_command

    later = world.request_pr("export-again", "reports", "export", author=SAM, merger=TINA)
    [entry] = trading.run(later).values()
    assert entry["state"] == "succeeded", entry
    assert site.lines("export.log") == ["old", "new"]


def test_confirmation_needs_a_second_person_allowed_the_same_action(trading: Trading) -> None:
    world, site = trading.world, trading.site
    alone = world.request_pr("purge-self-merged", "ledger", "purge", author=DMITRI, merger=DMITRI)
    direct_path = "requests/purge-direct.yaml"
    world.clone.switch("main")
    world.clone.commit(
        "purge, committed straight to main",
        author=DMITRI,
        files={direct_path: request_yaml("ledger", "purge")},
    )
    confirmed = world.request_pr("purge-confirmed", "ledger", "purge", author=DMITRI, merger=TINA)
    not_allowed = world.request_pr(
        "purge-merged-by-dev", "ledger", "purge", author=DMITRI, merger=ERIN
    )
    done = trading.run(alone, (direct_path, ""), confirmed, not_allowed)

    assert done[alone[0]]["state"] == "denied", done
    assert "is the requester" in done[alone[0]]["rule"]
    assert done[direct_path]["state"] == "denied", done
    assert done[direct_path]["approver"] is None
    assert "committed directly" in done[direct_path]["rule"]
    assert done[confirmed[0]]["state"] == "succeeded", done
    assert done[confirmed[0]]["approver"] == TINA.email
    assert f"confirmed by {TINA.email}" in done[confirmed[0]]["rule"]
    assert done[not_allowed[0]]["state"] == "denied", done
    assert f"approver {ERIN.email} may not" in done[not_allowed[0]]["rule"]
    assert site.lines("purge.log") == ["purged"]


def test_hostile_strings_in_a_request_never_reach_a_shell(
    trading: Trading, sshd_fleet: Fleet
) -> None:
    """A reason full of shell syntax is kept as data; host names full of it are rejected."""
    world, site = trading.world, trading.site
    absolute = site.dir / "pwned"
    relative = "pwned-rel"
    reason = (
        f'it\'s "down"; touch {absolute}; $(touch {absolute}) `touch {absolute}`\n'
        f"second line | touch {relative} && echo 'quoted' \\ $(touch {relative})\n"
        f"\t`touch {relative}` ${{IFS}}touch${{IFS}}{absolute} '; touch {absolute}; '"
    )
    hostile_hosts = [
        f"{APP_HOST}; touch {absolute}",
        f"$(touch {absolute})",
        f"`touch {relative}`",
        f"{APP_HOST}' \"; touch {absolute}",
        f"{APP_HOST}\ntouch {absolute}",
    ]
    by_reason = world.request_pr(
        "hostile-reason", "notifier", "notify", author=SAM, merger=TINA, reason=reason
    )
    by_hosts = world.request_pr(
        "hostile-hosts",
        "notifier",
        "notify",
        author=SAM,
        merger=TINA,
        reason=reason,
        hosts=hostile_hosts,
    )
    done = trading.run(by_reason, by_hosts)

    assert done[by_reason[0]]["state"] == "succeeded", done
    assert done[by_hosts[0]]["state"] == "denied", done
    assert done[by_hosts[0]]["rule"].startswith("invalid request file"), done
    assert "hosts" in done[by_hosts[0]]["rule"]
    assert site.lines("notify.log") == ["notified"]

    notes = world.wait_notes(by_reason[1], ["request.authorized", "action.started"])
    assert one(notes, "request.authorized")["details"]["reason"] == reason
    [step] = one(notes, "action.started")["details"]["plan"]
    assert step == {
        "component": "notifier",
        "action": "notify",
        "command": f"echo notified >>{site.dir}/notify.log",
        "run_as_user": None,
        "hosts": [APP_HOST],
    }
    # The file read back as the request says, so the test did send what it meant to.
    sent = yaml.safe_load((world.clone.path / by_hosts[0]).read_text())
    assert sent["hosts"] == hostile_hosts
    assert sent["reason"] == reason

    home = Path(pwd.getpwnam(sshd_fleet.user).pw_dir)
    places = [site.dir, home, Path.cwd(), world.state_dir, world.state_dir / "checkout"]
    found = [p for place in places for p in place.glob("pwned*")]
    assert not found, found


def test_an_invalid_request_file_does_not_block_later_requests(make_world: WorldFactory) -> None:
    """A request file that does not validate is denied as invalid, once; the next request,
    valid, merged after it, is judged by the maps and policies before its own merge, which
    that other request file does not change: it runs."""
    world = make_world("invalid-then-valid")
    site = world.site
    world.clone.commit("batch map", author=SAM, files=batch_files(world, [appending(site, "mark")]))
    world.start()
    world.wait_applied(world.push())
    bad = world.request_pr(
        "bad-hosts", "batch", "mark", author=SAM, merger=TINA, hosts=["not a host name"]
    )
    good = world.request_pr("good-after-bad", "batch", "mark", author=SAM, merger=TINA)
    world.push()
    assert world.wait_request(bad[0])["state"] == "denied"
    entry = world.wait_request(good[0])
    assert entry["state"] == "succeeded", entry
    assert site.lines("mark.log") == ["mark"]
