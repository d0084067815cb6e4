"""Replicas: two or three real ``opsmap run --replica`` processes on one PostgreSQL database
(the session's throwaway cluster), one git remote and the test sshd, with a short lease.

kill -9 of the leader while its action runs: the action is not run again, it is reported
``unknown`` once, by the replica that takes over, and requests go on there. SIGTERM of the
leader hands over cleanly. The database stopped for a while: no action starts, every
replica says so, and the request runs once when it is back. Twenty requests merged at
once under two replicas run once each, in order. Replicas started and stopped share the
hosts' checks, and a stopped replica's hosts are checked again by the others.

No timing assertion: waits are bounded by generous deadlines, assertions are on outcomes.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import yaml
from e2e_support import Opsmap, counter, start_opsmap, wait_for
from pgcluster import Cluster
from requests_e2e_support import (
    APP_HOST,
    MAP,
    SAM,
    SRE_ADMIN,
    TINA,
    WAIT_S,
    World,
    WorldFactory,
    appending,
    batch_files,
    component,
    known_hosts_text,
    map_yaml,
    policy_yaml,
    settings_yaml,
)
from sshd import free_port

from reconciler.audit import AuditRecord, verify_chain

pytestmark = [pytest.mark.sshd, pytest.mark.slow]

LEASE_S = 3.0
"""A short lease, so that a takeover comes within seconds."""


@dataclass
class Replica:
    name: str
    opsmap: Opsmap

    def status(self) -> dict[str, Any]:
        return self.opsmap.status()

    @property
    def id(self) -> str:
        return str(self.status()["fleet"]["replica"])

    def alive(self) -> bool:
        return self.opsmap.proc.poll() is None


class Replicas:
    """The replicas of one world, each with its own state directory and log."""

    def __init__(self, world: World, url: str) -> None:
        self.world = world
        self.url_file = world.root / "state-url"
        self.url_file.write_text(url + "\n")
        self.url_file.chmod(0o600)
        world.state_url = url
        self.started: dict[str, Replica] = {}

    def start(self, name: str) -> Replica:
        world = self.world
        opsmap = start_opsmap(
            world.processes,
            repo=world.remote.file_url,
            state_dir=world.root / f"state-{name}",
            log=world.root / f"{name}.log",
            poll_interval=1.0,
            timeout=60,
            extra_args=(
                "--ssh-key-dir", str(world.fleet.workdir),
                "--state-url-file", str(self.url_file),
                "--replica", name,
                "--lease", str(LEASE_S),
                "--stop-grace", "10",
            ),
        )  # fmt: skip
        assert opsmap.proc.poll() is None, opsmap.tail(60)
        replica = self.started[name] = Replica(name, opsmap)
        return replica

    def live(self) -> list[Replica]:
        return [r for r in self.started.values() if r.alive()]

    def tails(self) -> str:
        return "\n".join(f"--- {r.name}\n{r.opsmap.tail(30)}" for r in self.started.values())

    def wait_fleet(self, count: int) -> Replica:
        """Until every live replica sees ``count`` live replicas and one leader; the leader."""

        def settled() -> Replica | None:
            replicas = self.live()
            views = [r.status()["fleet"] for r in replicas]
            leaders = {v["leader"] for v in views}
            if len(leaders) != 1 or None in leaders or any(len(v["live"]) != count for v in views):
                return None
            [leader] = leaders
            found = [r for r, v in zip(replicas, views, strict=True) if v["replica"] == leader]
            return found[0] if found else None

        return wait_for(settled, what=f"{count} live replicas and a leader\n{self.tails()}",
                        timeout=WAIT_S)  # fmt: skip

    def wait_applied(self, sha: str) -> None:
        for replica in self.live():
            replica.opsmap.wait_applied(sha, timeout=WAIT_S)


def kill_9(replica: Replica) -> None:
    os.killpg(replica.opsmap.proc.pid, signal.SIGKILL)
    replica.opsmap.proc.wait(timeout=30)


def sigterm(replica: Replica) -> int:
    os.killpg(replica.opsmap.proc.pid, signal.SIGTERM)
    return replica.opsmap.proc.wait(timeout=60)


def wait_state(world: World, path: str, states: tuple[str, ...], what: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        entry = world.journal(path)
        return entry if entry is not None and entry["state"] in states else None

    return wait_for(reached, what=f"{path} {'/'.join(states)}\n{what}", timeout=WAIT_S,
                    interval=0.2, ignore=(OSError, psycopg.OperationalError))  # fmt: skip


def _unhealthy(replica: Replica) -> bytes | None:
    code, body = replica.opsmap.request("GET", "/healthz")
    return body if code == 503 else None


def chain_is_one(world: World) -> None:
    records = world.outbox()
    seqs = [r["seq"] for r in records]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len({r["id"] for r in records}) == len(records)
    assert verify_chain([AuditRecord.from_json(r) for r in records]) is None


def test_kill_9_of_the_leader_mid_action_is_unknown_once_and_never_rerun(
    make_world: WorldFactory, pg_cluster: Cluster
) -> None:
    world = make_world("rkill")
    site = world.site
    long_action = {
        "name": "long",
        "command": f"echo run >>{site.dir}/long.log; sleep 60",
        "timeout_secs": 120,
    }
    world.clone.commit(
        "batch map", author=SAM, files=batch_files(world, [long_action, appending(site, "mark")])
    )
    head = world.push()
    replicas = Replicas(world, pg_cluster.url(pg_cluster.database("rkill")))
    replicas.start("a")
    replicas.start("b")
    leader = replicas.wait_fleet(2)
    replicas.wait_applied(head)

    path, merge = world.request_pr("long", "batch", "long", author=SAM, merger=TINA)
    world.push()
    wait_state(world, path, ("running",), replicas.tails())
    wait_for(lambda: site.lines("long.log") == ["run"], what=f"the long action\n{replicas.tails()}")
    kill_9(leader)

    [survivor] = replicas.live()
    entry = wait_state(world, path, ("unknown",), replicas.tails())
    assert entry["commit"] == merge
    new_leader = replicas.wait_fleet(1)
    assert new_leader is survivor
    assert counter(survivor.opsmap.metrics(), "opsmap_requests_total", result="unknown") == 1
    assert counter(survivor.opsmap.metrics(), "opsmap_leader", replica=survivor.id) == 1

    # requests go on under the new leader; the long one never runs again
    later, _ = world.request_pr("mark", "batch", "mark", author=SAM, merger=TINA)
    world.push()
    assert wait_state(world, later, ("succeeded",), replicas.tails())["state"] == "succeeded"
    assert site.lines("long.log") == ["run"]
    assert site.lines("mark.log") == ["mark"]
    assert [r["action"] for r in world.records(path)] == [
        "request.authorized",
        "action.started",
        "action.unknown",
    ]
    chain_is_one(world)
    shown = {e["path"]: e["state"] for e in survivor.status()["requests"]}
    assert shown == {path: "unknown", later: "succeeded"}


def test_sigterm_of_the_leader_hands_over_and_a_follower_shows_the_requests(
    make_world: WorldFactory, pg_cluster: Cluster
) -> None:
    world = make_world("rterm")
    site = world.site
    world.clone.commit(
        "batch map",
        author=SAM,
        files=batch_files(world, [appending(site, "one"), appending(site, "two")]),
    )
    head = world.push()
    replicas = Replicas(world, pg_cluster.url(pg_cluster.database("rterm")))
    replicas.start("a")
    replicas.start("b")
    leader = replicas.wait_fleet(2)
    replicas.wait_applied(head)
    [follower] = [r for r in replicas.live() if r is not leader]

    first, _ = world.request_pr("one", "batch", "one", author=SAM, merger=TINA)
    world.push()
    wait_state(world, first, ("succeeded",), replicas.tails())
    # the follower runs nothing, and shows what the leader did, from the database
    wait_for(
        lambda: [e["state"] for e in follower.status()["requests"]] == ["succeeded"],
        what=f"the request on the follower's status\n{replicas.tails()}",
    )
    assert counter(follower.opsmap.metrics(), "opsmap_requests_total", result="authorized") == 0

    assert sigterm(leader) == 0
    assert "leads no more" not in leader.opsmap.tail(200)  # a clean stop, not a lost lease
    assert replicas.wait_fleet(1) is follower
    second, _ = world.request_pr("two", "batch", "two", author=SAM, merger=TINA)
    world.push()
    assert wait_state(world, second, ("succeeded",), replicas.tails())["state"] == "succeeded"
    assert (site.lines("one.log"), site.lines("two.log")) == (["one"], ["two"])
    states = dict(world.query("SELECT path, state FROM requests"))
    assert states == {first: "succeeded", second: "succeeded"}
    chain_is_one(world)


def test_the_database_away_starts_no_action_and_everything_resumes(
    make_world: WorldFactory, pg_cluster: Cluster
) -> None:
    world = make_world("routage")
    site = world.site
    world.clone.commit("batch map", author=SAM, files=batch_files(world, [appending(site, "mark")]))
    head = world.push()
    replicas = Replicas(world, pg_cluster.url(pg_cluster.database("routage")))
    replicas.start("a")
    replicas.start("b")
    replicas.wait_fleet(2)
    replicas.wait_applied(head)

    pg_cluster.stop()
    try:
        path, _ = world.request_pr("mark", "batch", "mark", author=SAM, merger=TINA)
        world.push()
        for replica in replicas.live():
            body = wait_for(
                lambda r=replica: _unhealthy(r),
                what=f"{replica.name}'s /healthz to say the database is away\n{replicas.tails()}",
            )
            assert b"state writes failing" in body, body
            wait_for(
                lambda r=replica: counter(
                    r.opsmap.metrics(), "opsmap_state_write_errors_total", what="lease"
                ),
                what=f"{replica.name}'s failed heartbeats counted\n{replicas.tails()}",
            )
            assert "state database is unreachable" in replica.opsmap.tail(200)
        deadline = time.monotonic() + 20  # the database stays away ~20 s: nothing starts
        while time.monotonic() < deadline:
            assert site.lines("mark.log") == []
            assert len(replicas.live()) == 2, replicas.tails()
            time.sleep(1)
    finally:
        pg_cluster.start()
    assert wait_state(world, path, ("succeeded",), replicas.tails())["state"] == "succeeded"
    assert site.lines("mark.log") == ["mark"]
    replicas.wait_fleet(2)
    for replica in replicas.live():
        wait_for(lambda r=replica: r.opsmap.healthz() == 200,
                 what=f"{replica.name} healthy again\n{replicas.tails()}")  # fmt: skip
    chain_is_one(world)


def test_twenty_requests_merged_at_once_under_two_replicas_run_once_each_in_order(
    make_world: WorldFactory, pg_cluster: Cluster
) -> None:
    world = make_world("rtwenty")
    site = world.site
    steps = [
        {"name": f"step{i:02d}", "command": f"echo step{i:02d} >>{site.dir}/order.log"}
        for i in range(20)
    ]
    world.clone.commit("batch map", author=SAM, files=batch_files(world, steps))
    head = world.push()
    replicas = Replicas(world, pg_cluster.url(pg_cluster.database("rtwenty")))
    replicas.start("a")
    replicas.start("b")
    replicas.wait_fleet(2)
    replicas.wait_applied(head)

    paths = [
        world.request_pr(f"r{i:02d}", "batch", f"step{i:02d}", author=SAM, merger=TINA)[0]
        for i in range(20)
    ]
    world.push()  # one push, twenty merges
    for path in paths:
        wait_state(world, path, ("succeeded",), replicas.tails())
    assert site.lines("order.log") == [f"step{i:02d}" for i in range(20)]
    assert world.journal_paths() == paths
    started = [r for r in world.outbox() if r["action"] == "action.started"]
    assert [r["target"]["request"] for r in started] == paths
    chain_is_one(world)


def _fleet_files(world: World, hosts: list[str]) -> dict[str, str | bytes | None]:
    """One component on ``hosts`` (all the one test sshd), a command check every 2 s."""
    server, fleet = world.server, world.fleet
    inventory = {
        "defaults": {
            "transport": "ssh",
            "user": fleet.user,
            "port": server.port,
            "identity_file": fleet.client_key.name,
            "known_hosts": "inventory/known_hosts",
        },
        "hosts": [{"name": h, "address": "127.0.0.1", "labels": {"role": "app"}} for h in hosts],
    }
    web = component("web", [])
    web["checks"] = [
        {"name": "alive", "type": "command", "config": {"command": "true"}, "interval_secs": 2}
    ]
    return {
        "opsmap.yaml": settings_yaml(),
        "inventory/fleet.yaml": yaml.safe_dump(inventory, sort_keys=False),
        "inventory/known_hosts": known_hosts_text(fleet, server),
        "policies/trading.yaml": policy_yaml([SRE_ADMIN]),
        f"maps/{MAP}.yaml": map_yaml([web]),
    }


def _checked_by(replica: Replica) -> dict[str, str | None]:
    return {h["name"]: h["checked_by"] for h in replica.status()["hosts"]}


def _last_runs(world: World) -> dict[str, float]:
    return {str(h): float(t) for h, t in world.query(
        "SELECT host, last_run FROM check_status WHERE last_run IS NOT NULL")}  # fmt: skip


def test_replicas_started_and_stopped_share_the_hosts_and_leave_none_unchecked(
    make_world: WorldFactory, pg_cluster: Cluster
) -> None:
    world = make_world("rshare")
    hosts = [f"{APP_HOST}-{i:02d}" for i in range(8)]
    world.clone.commit("fleet map", author=SAM, files=_fleet_files(world, hosts))
    head = world.push()
    replicas = Replicas(world, pg_cluster.url(pg_cluster.database("rshare")))
    a, b = replicas.start("a"), replicas.start("b")
    replicas.wait_fleet(2)
    replicas.wait_applied(head)

    def split_over(live: list[Replica]) -> dict[str, str]:
        """Until every live replica shows the same owner for every host, among ``live``."""
        ids = {r.id for r in live}

        def agreed() -> dict[str, str] | None:
            views = [_checked_by(r) for r in live]
            if any(v != views[0] for v in views) or set(views[0]) != set(hosts):
                return None
            owners = views[0]
            return owners if set(owners.values()) <= ids else None  # type: ignore[return-value]

        return wait_for(agreed, what=f"the hosts split over {sorted(ids)}\n{replicas.tails()}")

    owners = split_over([a, b])
    assert set(owners.values()) == {a.id, b.id}  # 8 hosts over 2: each gets some (fixed names)

    def all_checked_since(moment: float) -> dict[str, float] | None:
        runs = _last_runs(world)
        return runs if set(runs) == set(hosts) and min(runs.values()) > moment else None

    wait_for(lambda: all_checked_since(0), what=f"every host checked\n{replicas.tails()}")

    # a third replica joins: it takes some hosts, the others keep the rest
    c = replicas.start("c")
    replicas.wait_fleet(3)
    owners = split_over([a, b, c])
    assert c.id in owners.values()
    joined = time.time()
    wait_for(lambda: all_checked_since(joined), what=f"checks after c joined\n{replicas.tails()}")

    # b stops (SIGTERM), c dies (kill -9): a checks every host again
    assert sigterm(b) == 0
    kill_9(c)
    replicas.wait_fleet(1)
    assert set(split_over([a]).values()) == {a.id}
    gone = time.time()
    wait_for(lambda: all_checked_since(gone), what=f"a checks every host\n{replicas.tails()}")
    metrics = a.opsmap.metrics()
    assert counter(metrics, "opsmap_replica_hosts", replica=a.id) == len(hosts)
    assert counter(metrics, "opsmap_replica_info", replica=a.id) == 1
    assert a.status()["fleet"]["hosts_by_replica"] == {a.id: len(hosts)}


def test_every_replica_shows_a_host_another_replica_cannot_reach_as_unreachable(
    make_world: WorldFactory, pg_cluster: Cluster
) -> None:
    world = make_world("rreach")
    hosts = [f"{APP_HOST}-{i:02d}" for i in range(4)]
    files = _fleet_files(world, hosts)
    inventory = yaml.safe_load(str(files["inventory/fleet.yaml"]))
    down = "down-01"  # nothing listens on its port: each check finds it unreachable
    inventory["hosts"].append({"name": down, "address": "127.0.0.1", "port": free_port(),
                               "labels": {"role": "app"}})  # fmt: skip
    files["inventory/fleet.yaml"] = yaml.safe_dump(inventory, sort_keys=False)
    world.clone.commit("fleet map", author=SAM, files=files)
    head = world.push()
    replicas = Replicas(world, pg_cluster.url(pg_cluster.database("rreach")))
    a, b = replicas.start("a"), replicas.start("b")
    replicas.wait_fleet(2)
    replicas.wait_applied(head)

    def shown(replica: Replica) -> dict[str, tuple[bool, str | None]] | None:
        """Each host as ``replica`` shows it, once every host ran and the two agree."""
        views = {h["name"]: (h["reachable"], h["checked_by"]) for h in replica.status()["hosts"]}
        runs = _last_runs(world)
        if set(runs) != {*hosts, down} or views.get(down, (True, None))[0]:
            return None
        return views

    views = {r.name: wait_for(lambda r=r: shown(r), what=f"{down} unreachable on {r.name}\n"
                              f"{replicas.tails()}", timeout=WAIT_S) for r in (a, b)}  # fmt: skip
    owner = views["a"][down][1]
    assert owner in {a.id, b.id}
    other = b if owner == a.id else a
    assert views[other.name][down] == (False, owner)  # from the owner's rows, not its own run
    for view in views.values():
        assert all(view[h][0] for h in hosts)  # the others were reached
    metrics = other.opsmap.metrics()
    assert counter(metrics, "opsmap_host_reachable", host=down) == 0
