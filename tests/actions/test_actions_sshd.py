"""Actions over real SSH: a service really starts and stops, timeouts kill, locks hold.

The test user (``opsmap-test`` under root) runs a small service script written by the test
into a directory it can write to: ``start`` launches ``python3 -m http.server`` in the
background (its own session, a pid file), ``stop`` kills it and waits for it to go.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from actions_support import Phases, load_map, transport_for
from sshd import Fleet, free_port

from agentless.inventory import Host
from agentless.result import CommandResult
from agentless.testing import FakeTransport
from reconciler.actions import ActionOutcome, ActionRunner, StepStatus
from reconciler.clock import RealClock
from reconciler.model.maps import Map
from reconciler.model.status import ComponentStatus

pytestmark = pytest.mark.sshd

SERVICE = """\
#!/bin/sh
# service.sh start|stop PORT: a listening process in the background, with a pid file.
set -u
here=$(dirname "$0")
pidfile="$here/svc-$2.pid"
case "$1" in
start)
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then exit 0; fi
    setsid nohup python3 -m http.server "$2" --bind 127.0.0.1 --directory "$here" \\
        >"$here/svc-$2.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    echo "started $2"
    ;;
stop)
    [ -f "$pidfile" ] || exit 0
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null
    i=0
    while kill -0 "$pid" 2>/dev/null; do
        i=$((i + 1)); [ "$i" -gt 100 ] && exit 1
        sleep 0.1
    done
    rm -f "$pidfile"
    echo "stopped $2"
    ;;
*) echo "usage: $0 start|stop PORT" >&2; exit 2 ;;
esac
"""


@dataclass
class Site:
    """A directory on the test host (this machine) where the test user may write."""

    dir: Path

    @property
    def service(self) -> Path:
        return self.dir / "service.sh"

    def pids(self) -> list[int]:
        return [
            int(line)
            for pidfile in self.dir.glob("*.pid")
            for line in pidfile.read_text().split()
            if line.strip()
        ]


@pytest.fixture(scope="module")
def host(sshd_fleet: Fleet) -> Host:
    [server] = sshd_fleet.start(1)
    return sshd_fleet.host(server)


@pytest.fixture
def site(sshd_fleet: Fleet) -> Iterator[Site]:
    path = sshd_fleet.workdir / f"site-{secrets.token_hex(4)}"
    path.mkdir()
    path.chmod(0o777)
    site = Site(path)
    site.service.write_text(SERVICE)
    site.service.chmod(0o755)
    yield site
    for pid in site.pids():  # whatever a failed test left running
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(path, ignore_errors=True)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int) -> bool:
    """True for a live (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def wait_until(condition: Callable[[], bool], *, within: float = 10.0) -> bool:
    """Poll ``condition()`` until it holds or ``within`` seconds pass (a bound, not a timing)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def service_map(site: Site, port: int) -> Map:
    return load_map(
        f"""
        name: svc
        components:
          - id: web
            actions:
              - name: start
                command: {site.service} start {port}
                async: true
                timeout_secs: 20
                completion_check:
                  type: tcp
                  config: {{port: {port}}}
                  timeout_secs: 20
                  interval_secs: 1
              - name: stop
                command: {site.service} stop {port}
                timeout_secs: 20
        """
    )


Seen = tuple[str, ComponentStatus | None]


def test_start_then_stop_a_real_service(sshd_fleet: Fleet, host: Host, site: Site) -> None:
    port = free_port()
    web = service_map(site, port).components[0]
    start, stop = web.action("start"), web.action("stop")
    assert start is not None
    assert stop is not None
    phases = Phases()

    async def scenario() -> tuple[ActionOutcome, bool, ActionOutcome, list[Seen]]:
        ssh = transport_for(sshd_fleet)
        seen: list[Seen] = []

        def note_phase(h: Host, command: str, timeout: float) -> Awaitable[CommandResult]:
            # The real SSH transport behind the fake, noting the phase at each command.
            seen.append((command, phases.current.get(("svc", "web"))))
            return ssh.run(h, command, timeout=timeout)

        runner = ActionRunner(FakeTransport(note_phase), clock=RealClock(), set_phase=phases)
        try:
            started = await runner.run_action("svc", web, start, [host])
            up = listening(port)
            stopped = await runner.run_action("svc", web, stop, [host])
        finally:
            await ssh.aclose()
        return started, up, stopped, seen

    started, up, stopped, seen = asyncio.run(scenario())
    assert started.succeeded, started.to_json()
    assert up
    [on_host] = started.hosts
    assert on_host.exit_status == 0
    assert on_host.output_excerpt == f"started {port}\n"
    assert on_host.completion is not None
    assert on_host.completion.passed
    assert stopped.succeeded, stopped.to_json()
    assert not listening(port)
    assert phases.calls == [
        ("svc", "web", ComponentStatus.STARTING),
        ("svc", "web", None),
        ("svc", "web", ComponentStatus.STOPPING),
        ("svc", "web", None),
    ]
    # Every command of the start (the action, then each tcp probe) ran while STARTING.
    start_part = seen[: len(seen) - 1]
    assert len(start_part) >= 2
    assert all(phase is ComponentStatus.STARTING for _, phase in start_part)
    assert seen[-1] == (f"{site.service} stop {port}", ComponentStatus.STOPPING)


def test_an_action_that_times_out_is_killed_and_fails(
    sshd_fleet: Fleet, host: Host, site: Site
) -> None:
    hang = load_map(
        f"""
        name: svc
        components:
          - id: web
            actions:
              - name: hang
                command: |
                  echo $$ >{site.dir}/hang.pid
                  sleep 300 & echo $! >>{site.dir}/hang.pid
                  wait
                timeout_secs: 1
        """
    )
    web = hang.components[0]
    action = web.action("hang")
    assert action is not None

    async def scenario() -> ActionOutcome:
        transport = transport_for(sshd_fleet)
        try:
            return await ActionRunner(transport, clock=RealClock()).run_action(
                "svc", web, action, [host]
            )
        finally:
            await transport.aclose()

    outcome = asyncio.run(scenario())
    assert not outcome.succeeded
    [on_host] = outcome.hosts
    assert on_host.timed_out
    assert on_host.exit_status is None
    assert on_host.reason is not None
    assert on_host.reason.startswith("timed out")
    pids = site.pids()
    assert len(pids) == 2  # the shell and its sleep both started
    assert wait_until(lambda: not any(alive(pid) for pid in pids)), [
        pid for pid in pids if alive(pid)
    ]


def test_an_unreachable_host_fails_with_its_reason(
    sshd_fleet: Fleet, host: Host, site: Site
) -> None:
    dead = sshd_fleet.host(sshd_fleet.servers[0], name="dead", port=free_port())
    web = load_map(
        f"""
        name: svc
        components:
          - id: web
            actions: [{{name: touch, command: touch {site.dir}/touched}}]
        """
    ).components[0]
    action = web.action("touch")
    assert action is not None

    async def scenario() -> ActionOutcome:
        transport = transport_for(sshd_fleet)
        try:
            runner = ActionRunner(transport, clock=RealClock())
            return await runner.run_action("svc", web, action, [host, dead])
        finally:
            await transport.aclose()

    outcome = asyncio.run(scenario())
    assert not outcome.succeeded
    ok, down = outcome.hosts
    assert ok.succeeded
    assert (site.dir / "touched").exists()
    assert down.unreachable is not None
    assert "refused" in down.unreachable
    assert outcome.reason == f"dead: not started: host unreachable: {down.unreachable}"
    assert (outcome.result, down.result, down.started) == ("failed", "failed", False)


def test_two_actions_on_one_host_never_overlap(sshd_fleet: Fleet, host: Host, site: Site) -> None:
    """Each action logs its start and end (by the host's clock): the intervals are disjoint."""
    log = site.dir / "intervals.log"

    def logged(name: str) -> str:
        edge = f'echo "{name} %s $(date +%%s%%N)" >>{log}'
        return json.dumps(f"{edge % 'start'}; sleep 0.5; {edge % 'end'}")

    web = load_map(
        f"""
        name: svc
        components:
          - id: web
            actions:
              - {{name: one, command: {logged("one")}}}
              - {{name: two, command: {logged("two")}}}
        """
    ).components[0]
    one, two = web.action("one"), web.action("two")
    assert one is not None
    assert two is not None

    async def scenario() -> None:
        transport = transport_for(sshd_fleet)
        runner = ActionRunner(transport, clock=RealClock())
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(runner.run_action("svc", web, one, [host]))
                tg.create_task(runner.run_action("svc", web, two, [host]))
        finally:
            await transport.aclose()

    asyncio.run(scenario())
    times: dict[str, dict[str, int]] = {}
    for line in log.read_text().splitlines():
        name, edge, when = line.split()
        times.setdefault(name, {})[edge] = int(when)
    a, b = times["one"], times["two"]
    assert a["end"] <= b["start"] or b["end"] <= a["start"], times


def test_whole_map_start_follows_dependencies_and_stops_at_the_first_failure(
    sshd_fleet: Fleet, host: Host, site: Site
) -> None:
    """db must be listening (its completion check passed) before api's start runs."""
    port = free_port()
    order = site.dir / "order"
    probe = f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 2)'"
    shop = load_map(
        f"""
        name: shop
        components:
          - id: web
            dependencies: [api]
            actions:
              - {{name: start, command: "echo web >>{order}; exit 1"}}
              - {{name: stop, command: "echo web >>{order}"}}
          - id: late
            dependencies: [web]
            actions:
              - {{name: start, command: "echo late >>{order}"}}
          - id: api
            dependencies: [db, external-thing]
            actions:
              - name: start
                command: {probe} && echo api >>{order}
              - {{name: stop, command: "echo api >>{order}"}}
          - id: db
            actions:
              - name: start
                command: {site.service} start {port} && echo db >>{order}
                async: true
                completion_check:
                  type: tcp
                  config: {{port: {port}}}
                  timeout_secs: 20
                  interval_secs: 1
              - name: stop
                command: {site.service} stop {port} && echo db >>{order}
        """
    )
    hosts = {c.id: [host] for c in shop.components}

    async def scenario() -> tuple[ActionOutcome, list[str], ActionOutcome]:
        transport = transport_for(sshd_fleet)
        runner = ActionRunner(transport, clock=RealClock())
        try:
            started = await runner.run_whole_map(shop, "start", hosts)
            started_order = order.read_text().split()
            order.unlink()
            stopped = await runner.run_whole_map(shop, "stop", hosts)
        finally:
            await transport.aclose()
        return started, started_order, stopped

    started, started_order, stopped = asyncio.run(scenario())
    assert started_order == ["db", "api", "web"]
    assert [(s.component, s.status) for s in started.steps] == [
        ("db", StepStatus.SUCCEEDED),
        ("api", StepStatus.SUCCEEDED),
        ("web", StepStatus.FAILED),
        ("late", StepStatus.NOT_RUN),
    ]
    assert not started.succeeded
    assert started.reason == f"web/start: {host.name}: exit status 1"
    assert stopped.succeeded, stopped.to_json()
    assert order.read_text().split() == ["web", "api", "db"]
    assert not listening(port)


def test_run_as_user_through_real_sudo(sshd_fleet: Fleet, host: Host, site: Site) -> None:
    sudo = shutil.which("sudo")
    if sudo is None:
        pytest.skip("sudo is not installed on the test host: the sudo -n -u text is unit-tested")
    web = load_map(
        f"""
        name: svc
        components:
          - id: web
            actions:
              - {{name: whoami, command: "id -un >{site.dir}/who", run_as_user: {sshd_fleet.user}}}
        """
    ).components[0]
    action = web.action("whoami")
    assert action is not None

    async def scenario() -> ActionOutcome:
        transport = transport_for(sshd_fleet)
        try:
            return await ActionRunner(transport, clock=RealClock()).run_action(
                "svc", web, action, [host]
            )
        finally:
            await transport.aclose()

    outcome = asyncio.run(scenario())
    if not outcome.succeeded and "password is required" in outcome.hosts[0].output_excerpt:
        pytest.skip(f"the test user may not use sudo -n here: {outcome.hosts[0].output_excerpt}")
    assert outcome.succeeded, outcome.to_json()
    assert (site.dir / "who").read_text().strip() == sshd_fleet.user
