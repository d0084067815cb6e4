"""Benchmark: OpsMap's agentless engine against N real sshd, and Ansible on the same servers.

    PYTHONPATH=.:tests/support python benchmarks/checks_bench.py [--hosts 50] [--cycles 5]
        [--mode shell|exec|both] [--cold-runs 3] [--cold-cmd "..."] [--no-ansible]

Starts N OpenSSH servers on loopback (tests/support/sshd.py; needs root or the current user's own
login), then:

1. warm: one transport, one untimed cycle to connect, then ``--cycles`` timed cycles of
   5 checks per host (tcp to a plain listener process, process, memory, disk, command):
   wall time, checks/s and
   client CPU per check (``time.process_time`` over the warm cycles / checks);
2. cold: ``--cold-runs`` runs of the real CLI in a new process each time, ``opsmap check
   --repo {repo} --format json --ssh-key-dir {workdir}`` on a map repo generated in the
   fleet directory (an inventory of the N servers with their known_hosts and the client key as
   identity_file, one component with the same 5 checks on every host): import, load and
   validate the repo, connect to every host, run every check once. For comparison, the
   engine alone (``benchmarks/bench_cold.py {spec}``: no repo, no CLI) is timed
   too. ``--cold-cmd`` replaces the CLI command (``{repo}``, ``{spec}``, ``{workdir}``
   are filled in);
3. Ansible, when ``ansible-playbook`` is installed (``pip install '.[bench]'``): the same
   5 probe commands as ``raw`` tasks, forks = N, SSH ControlPersist; one cold run (fresh
   control sockets), one run to warm, then timed warm runs. Prints the ratios.

Programs are run from this interpreter's bin directory when they are there (``opsmap``,
``ansible-playbook``), so that neither side pays for a version-manager shim.

Each warm mode also times the same cycle of no-op commands (the ``:`` builtin, 5 per
host) on the same connections: the engine's own cost without any probe. The cycle minus
that is the probes' own work on the targets, which bounds the ratio whatever the engine:
``ceiling`` prints what an engine that cost nothing would reach.

Figures on the 2-core benchmark machine, 50 sshd, 250 checks (ranges over the runs of
the day; Ansible 2.19 in the same runs, forks 50, ControlPersist, pipelining):

=======================  ===============  ==============  ===============  ============
                         before batching  batched         cheaper probes   Ansible
=======================  ===============  ==============  ===============  ============
warm cycle               524-648 ms       226-460 ms      193-226 ms       3.5-6.9 s
no-op cycle (engine)                                      8-10 ms
client CPU per check     0.27-0.37 ms     0.09-0.16 ms    0.08-0.09 ms     22-40 ms
cold ``opsmap check``                     0.98-1.80 s     0.98-1.05 s      5.6-12.1 s
=======================  ===============  ==============  ===============  ============

The machine is at 100% CPU during a warm cycle, and about 95% of the cycle is the
probes' processes on the server side, which the 50 sshd share with the client: per host
and cycle, ``head`` over ~270 ``/proc/<pid>/stat`` files (process, ~3.5 ms of CPU),
``timeout`` + ``df`` (disk, ~1.7 ms), ``timeout`` + the command (command, ~1.6 ms),
``sed`` over the socket table (tcp, ~1.7 ms). Ansible runs the same probe text as its
``raw`` tasks, less the ``timeout`` that OpsMap puts around every command so that the
target kills it on time even when OpsMap is gone. A cold run is bound by the servers'
handshakes (sshd forks and re-executes itself per connection) and the CLI's imports
(asyncssh alone ~130 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench_cold import bench_checks, bench_targets
from sshd import Fleet

from agentless.checks.probes import probe_command
from agentless.inventory import Host
from agentless.result import CheckState
from agentless.runner import run_checks
from agentless.ssh import Mode, SshSettings, SshTransport
from agentless.transport import Inline


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def warm_cycles(
    settings: SshSettings,
    hosts: Sequence[Host],
    *,
    mode: Mode,
    cycles: int,
    per_host: int,
    tcp_port: int,
) -> dict[str, float]:
    targets = bench_targets(hosts, tcp_port=tcp_port)
    transport = SshTransport(settings, mode=mode, per_host_limit=per_host)
    try:
        first = await run_checks(targets, transport=transport)
        not_ok = [r for r in first if r.outcome.state is not CheckState.OK]
        if not_ok:
            raise SystemExit(f"warm-up: {len(not_ok)} checks not OK, e.g. {not_ok[0]}")
        walls = []
        cpu0 = time.process_time()
        for _ in range(cycles):
            t0 = time.perf_counter()
            runs = await run_checks(targets, transport=transport)
            walls.append(time.perf_counter() - t0)
            bad = sum(r.outcome.state is not CheckState.OK for r in runs)
            if bad:
                raise SystemExit(f"{bad} checks not OK in a warm cycle")
        cpu = time.process_time() - cpu0
        connects = sum(transport.connections_opened(h) for h in hosts)
        per_host = len(targets) // len(hosts)
        engine = await engine_cycles(transport, hosts, per_host=per_host, cycles=cycles)
    finally:
        await transport.aclose()
    checks = len(targets) * cycles
    return {
        "cycle_s": statistics.median(walls),
        "checks_per_s": checks / sum(walls),
        "cpu_ms_per_check": 1000 * cpu / checks,
        "connects": connects,
        "engine_cycle_s": engine,
    }


async def engine_cycles(
    transport: SshTransport, hosts: Sequence[Host], *, per_host: int, cycles: int
) -> float:
    """Median cycle of ``per_host`` no-op commands (the ``:`` builtin) on every host: the
    engine's own cost (SSH, shell framing, dispatch, the client), without any probe."""
    noop = Inline(": noop")
    walls = []
    for _ in range(cycles + 1):
        t0 = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for host in hosts:
                for _ in range(per_host):
                    tg.create_task(transport.run(host, noop, timeout=20.0))
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls[1:])


def write_spec(fleet: Fleet, hosts: Sequence[Host], tcp_port: int) -> Path:
    spec = {
        "base_dir": str(fleet.workdir),
        "tcp_port": tcp_port,
        "client_keys": [str(fleet.client_key)],
        "hosts": [
            {
                "name": h.name,
                "address": h.address,
                "port": h.port,
                "user": h.user,
                "known_hosts": h.known_hosts,
            }
            for h in hosts
        ],
    }
    path = fleet.workdir / "bench_spec.json"
    path.write_text(json.dumps(spec))
    return Path(path)


def write_map_repo(fleet: Fleet, hosts: Sequence[Host], tcp_port: int) -> Path:
    """A map repo for ``opsmap check``: the N servers in its inventory, one component on
    all of them with the benchmark's 5 checks (the same configs as the warm cycles)."""
    import yaml  # the CLI depends on it anyway

    repo = fleet.workdir / "map-repo"
    (repo / "inventory").mkdir(parents=True, exist_ok=True)
    (repo / "maps").mkdir(exist_ok=True)
    (repo / "opsmap.yaml").write_text("poll_interval_secs: 30\n")
    shutil.copyfile(fleet.known_hosts, repo / "inventory" / "known_hosts")
    inventory = {
        "defaults": {
            "user": fleet.user,
            "transport": "ssh",
            "identity_file": fleet.client_key.name,  # in --ssh-key-dir {workdir}
            "known_hosts": "inventory/known_hosts",
            "connect_timeout_secs": 10,
            "login_timeout_secs": 30,
        },
        "hosts": [
            {"name": h.name, "address": h.address, "port": h.port, "labels": {"bench": "yes"}}
            for h in hosts
        ],
    }
    (repo / "inventory" / "fleet.yaml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    checks = [
        {
            "name": check_type.replace("native:", ""),
            "type": check_type,
            "config": config.model_dump(exclude_defaults=True),
            "interval_secs": 30,
            "timeout_secs": 20,
        }
        for check_type, config in bench_checks(hosts[0], tcp_port=tcp_port)
    ]
    fleet_map = {
        "name": "bench",
        "version": "1",
        "components": [
            {
                "id": "fleet",
                "name": "Benchmark fleet",
                "type": "host",
                "hosts": {"labels": {"bench": "yes"}},
                "checks": checks,
            }
        ],
    }
    (repo / "maps" / "bench.yaml").write_text(yaml.safe_dump(fleet_map, sort_keys=False))
    return repo


def program(name: str) -> str:
    """``name`` from this interpreter's bin directory if it is there, else from PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def timed(cmd: Sequence[str], *, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and children CPU seconds of one run; fails loudly on a non-zero exit."""
    cpu0 = children_cpu_s()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        raise SystemExit(f"{shlex.join(cmd)} exited {proc.returncode}:\n{tail}")
    return wall, children_cpu_s() - cpu0


class Listener:
    """A plain TCP listener in its own process, the target of every host's tcp check."""

    CODE = (
        "import socket,sys\n"
        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('127.0.0.1', 0)); s.listen(512); print(s.getsockname()[1], flush=True)\n"
        "while True:\n    s.accept()[0].close()\n"
    )

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.CODE], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Ansible:
    """The same five probes as an Ansible playbook of ``raw`` tasks against the fleet."""

    def __init__(
        self, fleet: Fleet, hosts: Sequence[Host], *, strategy: str, tcp_port: int
    ) -> None:
        self.dir = fleet.workdir / "ansible"
        self.dir.mkdir(exist_ok=True)
        self.control = Path(tempfile.mkdtemp(prefix="cp-", dir="/tmp"))
        inventory = ["[fleet]"] + [
            f"{h.name} ansible_host={h.address} ansible_port={h.port} ansible_user={h.user}"
            for h in hosts
        ]
        (self.dir / "inventory.ini").write_text("\n".join(inventory) + "\n")
        tasks = []
        for check_type, config in bench_checks(hosts[0], tcp_port=tcp_port):
            command = probe_command(config, timeout_s=20.0)
            # Judged by OpsMap's parsers, not by the exit status (cut exits 1 when a
            # process ends while it reads), as OpsMap does.
            task = {"name": check_type, "ansible.builtin.raw": command}
            tasks.append({**task, "changed_when": False, "failed_when": False})
        play = [{"hosts": "fleet", "gather_facts": False, "strategy": strategy, "tasks": tasks}]
        (self.dir / "playbook.yml").write_text(json.dumps(play))
        ssh_args = (
            f"-o ControlMaster=auto -o ControlPersist=120s -o IdentitiesOnly=yes "
            f"-o UserKnownHostsFile={fleet.known_hosts} -o StrictHostKeyChecking=yes"
        )
        (self.dir / "ansible.cfg").write_text(
            "[defaults]\n"
            f"forks = {len(hosts)}\n"
            "host_key_checking = True\n"
            "gathering = explicit\n"
            f"private_key_file = {fleet.client_key}\n"
            "interpreter_python = auto_silent\n"
            "[ssh_connection]\n"
            f"ssh_args = {ssh_args}\n"
            f"control_path = {self.control}/%%C\n"
            "pipelining = True\n"
        )
        self.env = {**os.environ, "ANSIBLE_CONFIG": str(self.dir / "ansible.cfg")}
        self.hosts = hosts

    def command(self) -> list[str]:
        return [
            program("ansible-playbook"),
            "-i",
            str(self.dir / "inventory.ini"),
            str(self.dir / "playbook.yml"),
        ]

    def run(self) -> tuple[float, float]:
        return timed(self.command(), env=self.env)

    def close(self) -> None:
        for sock in self.control.iterdir():
            subprocess.run(
                ["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(self.control, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--mode", choices=["shell", "exec", "both"], default="both")
    parser.add_argument(
        "--cold-cmd",
        default=f"{shlex.quote(program('opsmap'))} check --repo {{repo}} --format json"
        " --ssh-key-dir {workdir}",
    )
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--per-host", type=int, default=4, help="SshTransport per_host_limit")
    parser.add_argument("--no-ansible", action="store_true")
    parser.add_argument("--ansible-runs", type=int, default=2)
    parser.add_argument("--ansible-strategy", default="linear")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="opsmap-bench-"))
    fleet = Fleet(workdir)
    listener = Listener()
    ansible: Ansible | None = None
    try:
        t0 = time.perf_counter()
        servers = fleet.start(args.hosts)
        hosts = [fleet.host(s, connect_timeout_s=10.0, login_timeout_s=30.0) for s in servers]
        checks = 5 * len(hosts)
        print(
            f"{len(servers)} sshd started in {time.perf_counter() - t0:.1f}s; "
            f"{checks} checks per cycle"
        )
        settings = SshSettings(
            base_dir=workdir, client_keys=[str(fleet.client_key)], use_agent=False
        )

        modes: list[Mode] = ["shell", "exec"] if args.mode == "both" else [args.mode]
        warm: dict[str, dict[str, float]] = {}
        for mode in modes:
            warm[mode] = asyncio.run(
                warm_cycles(
                    settings,
                    hosts,
                    mode=mode,
                    cycles=args.cycles,
                    per_host=args.per_host,
                    tcp_port=listener.port,
                )
            )
            w = warm[mode]
            print(
                f"warm {mode:5}: cycle {w['cycle_s'] * 1000:7.1f} ms  "
                f"{w['checks_per_s']:6.0f} checks/s  client CPU {w['cpu_ms_per_check']:.3f} "
                f"ms/check  ({w['connects']:.0f} connections); the same cycle of no-op "
                f"commands {w['engine_cycle_s'] * 1000:.1f} ms"
            )

        spec = write_spec(fleet, hosts, listener.port)
        repo = write_map_repo(fleet, hosts, listener.port)
        fill = {"spec": spec, "workdir": workdir, "repo": repo}
        engine_cmd = [sys.executable, str(Path(__file__).with_name("bench_cold.py")), str(spec)]
        cold_cmd = shlex.split(args.cold_cmd.format(**fill))
        cold_wall = 0.0
        for label, cmd in (("cold engine", engine_cmd), ("cold CLI", cold_cmd)):
            colds = [timed(cmd) for _ in range(args.cold_runs)]
            cold_wall = statistics.median(w for w, _ in colds)
            cold_cpu = statistics.median(c for _, c in colds)
            print(
                f"{label:11}: {cold_wall:.2f} s wall, {cold_cpu:.2f} s CPU "
                f"(median of {len(colds)}: {', '.join(f'{w:.2f}' for w, _ in colds)})  "
                f"{shlex.join(cmd)}"
            )

        if args.no_ansible or shutil.which("ansible-playbook") is None:
            print("ansible    : skipped (pip install '.[bench]' to compare)")
            return 0
        ansible = Ansible(fleet, hosts, strategy=args.ansible_strategy, tcp_port=listener.port)
        a_cold_wall, _cold_cpu = ansible.run()
        ansible.run()
        a_runs = [ansible.run() for _ in range(args.ansible_runs)]
        a_warm_wall = statistics.median(w for w, _ in a_runs)
        a_warm_cpu = statistics.median(c for _, c in a_runs)
        print(
            f"ansible    : warm {a_warm_wall:.2f} s "
            f"({1000 * a_warm_cpu / checks:.2f} ms CPU/check), "
            f"cold {a_cold_wall:.2f} s, forks {len(hosts)}, strategy {args.ansible_strategy}"
        )
        best = min(warm.values(), key=lambda w: w["cycle_s"])
        print(
            f"ratio      : warm {a_warm_wall / best['cycle_s']:.1f}x faster than Ansible "
            "(goal ≥ 20x), "
            f"cold {a_cold_wall / cold_wall:.1f}x (goal ≥ 5x), "
            f"client CPU {best['cpu_ms_per_check']:.3f} ms/check (goal ≤ 0.3)"
        )
        probes_s = best["cycle_s"] - best["engine_cycle_s"]
        print(
            f"ceiling    : the probes' own work takes {probes_s * 1000:.0f} ms of the cycle "
            f"(cycle minus no-op cycle); an engine that cost nothing would be "
            f"{a_warm_wall / probes_s:.1f}x faster than Ansible"
        )
    finally:
        if ansible is not None:
            ansible.close()
        listener.close()
        fleet.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
