"""Benchmark: the long-running ``opsmap run`` at fleet size, one replica and two.

    PYTHONPATH=.:tests/support python benchmarks/fleet_bench.py [--hosts 1000]
        [--interval 30] [--duration 180] [--warmup 40] [--only sqlite|postgres|nagios]
        [--nagios-hosts N] [--shared-proc]

N hosts (127.1.x.y, one address each) are served by OpenSSH on loopback: sshd accepts at
most 16 ``ListenAddress`` lines (its ``MAX_LISTEN_SOCKS``), so one sshd process serves
each 16 addresses, all on one port with one host key (tests/support/sshd.py's user and
client key). One component on every host has 5 checks (tcp to a plain listener, process,
memory, disk, command: the checks of ``checks_bench.py``) at a fixed interval. The map
repo is a local git repo.

Three phases, one after the other (so that none takes CPU from another), ``--duration``
seconds each after ``--warmup`` seconds (every connection open, the first round of checks
spread out): one ``opsmap run`` with SQLite, then two ``opsmap run --replica`` on a
throwaway PostgreSQL cluster (tests/support/pgcluster.py), then Nagios 4 running the same
checks on the same hosts (benchmarks/nagios_fleet.py; skipped, saying so, where
``nagios4`` is not installed). ``--nagios-hosts N`` gives Nagios only the first N hosts
(same checks, same interval) where it cannot keep up with all of them: the CPU per check
stays comparable, the checks/s then show how much of the load it was given.
For each replica it prints: sustained checks/s (``opsmap_check_runs_total`` over the
window), the reconciler's CPU per check (utime + stime of ``/proc/<pid>/stat`` over the
window; SSH runs in-process, so this includes the client's SSH work), RSS
(``VmRSS``), schedule lag p50/p99 (due time to start: ``opsmap_check_schedule_lag_seconds``
over the window, interpolated within its buckets), ``/api/v1/status`` and ``/metrics``
latency (median and max of 10 GETs), and the host split between replicas (each
replica's ``fleet.hosts_by_replica``). The load average is printed before and after: the
machine may be shared.

Figures (``--hosts 1000 --interval 30 --duration 120 --warmup 60 --nagios-hosts 100``,
2026-12-02, the 2-core machine otherwise idle, every sshd in its own PID namespace; load
average 1.6 to 2.9 at the end of each window, all check runs OK):

==========================  =================  ==================================
                            SQLite, 1 replica  PostgreSQL, 2 replicas (each)
==========================  =================  ==================================
checks/s (167 due)          167.1              82.6 and 87.7 (170.2 in all)
CPU per check               0.68 ms (11%)      1.20 and 1.12 ms (10% of a core)
RSS                         145 MB             158 and 153 MB
schedule lag p50 / p99      1.0 / 9.3 ms       1.5-1.6 / 99-155 ms
status median / max         30 / 147 ms        35-105 / 166-329 ms
metrics median / max        51 / 97 ms         49-124 / 212-597 ms
host split                  all                490 / 510
==========================  =================  ==================================

Of the goals (lag p99 <= 1 s, RSS <= 300 MB, status <= 200 ms, an even split) all are
met but the reconciler's CPU per check (goal 0.3 ms) and one replica's status maximum.
What the CPU goes to (py-spy at 1,000 hosts): SSH packets in Python (asyncssh decrypts and
dispatches each; a command's output and its two end marks, stdout and stderr, come back
as separate packets, so a round of 5 checks is a dozen packets in, one out), the send
itself (``setsockopt`` uncorking a frame runs sshd's loopback receive in our system
time), then parsing, status and metrics (each a few percent). A replica also reads the
other's check rows every heartbeat, hence its higher CPU per check.

Before this session's fixes, on the same 1,000 hosts: 134 checks/s of 167, lag p50 8.1 s
and p99 >= 10 s, 1.22 ms per check, status 1.0 s, /metrics 1.4 s. One scheduler task per
check gave five frames per host per round, the 64-check bound per map capped the rate,
each frame missed the frame cache, and every read built the snapshot anew.

``--shared-proc`` (every sshd in the machine's one ``/proc``: 1,000 hosts of 3,300
processes each, all on these two cores) saturates the machine on the hosts' side: every
process check reads 3,300 stat files (about 50 ms of CPU), 1.6 cores at 33 process checks
a second. Measured so: 104 checks/s, 0.80 ms per check, lag p50 2.1 s, p99 4.9 s, status
4.2 s, load average 71; the PostgreSQL phase's /metrics timed out. That is the host side,
not the reconciler: see :data:`OWN_PROC`.

Nagios 4.4.6 (Debian's nagios4-core and monitoring-plugins-basic), the same run, the same
5 checks as ``check_by_ssh`` over one persistent ssh master per host, on 100 of the hosts
(``--nagios-hosts 100``): at 1,000 hosts it did not keep up (no check finished in the
window: the CPU went into opening masters and checks; the script says so). On 100: 16.5
checks/s (17 due, all OK), 8.5 ms CPU per check (14% of a core), of which 0.42 ms in the
ssh masters and the rest in Nagios and the two processes each check starts
(``check_by_ssh`` and its ssh mux client, where OpsMap starts none locally); RSS 15 MB
for Nagios and its workers plus 362 MB in the 100 masters; latency max 12 ms. CPU per
check, Nagios / OpsMap (SQLite, 1 replica, at 1,000 hosts): 12.4.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import nagios_fleet
import yaml
from bench_cold import bench_checks
from e2e_support import Opsmap, Processes, samples, start_opsmap, stop_group
from pgcluster import Cluster
from sshd import SSHD, Fleet

from agentless.inventory import Host
from agentless.result import HostName

PER_SSHD = 16
"""sshd's MAX_LISTEN_SOCKS: the addresses one sshd process can listen on."""
CLK_TCK = os.sysconf("SC_CLK_TCK")
OWN_PROC = ["unshare", "--pid", "--fork", "--mount-proc"]
"""Each sshd (16 emulated hosts) runs in a PID namespace with its own ``/proc``, so a
probe on one emulated host sees the processes of its 16 hosts' sessions (about 50), as a
real host sees its own, not the 3,000-odd sessions of all 1,000: in one shared ``/proc``,
every process check of every host reads every host's processes (about 50 ms of CPU per
check on this machine, 1.6 cores at 33 process checks/s), work that grows with the square
of the fleet and that no real fleet does. ``--shared-proc`` runs them that way anyway (a
fleet of hosts with 3,000 processes each, all on these two cores)."""


def address(i: int) -> str:
    return f"127.1.{(i + 1) // 250}.{(i + 1) % 250 + 1}"


def accept_and_close(listener: socket.socket) -> None:
    """The tcp check's plain listener answers every connect: OpsMap's loopback tcp check
    only reads /proc/net/tcp, but Nagios's check_tcp connects, and once the accept queue
    of a listener that never accepts is full, a connect times out."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conn.close()


def free_port_on(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Servers:
    """ceil(N/16) sshd processes, 16 loopback addresses each, one port, one host key."""

    fleet: Fleet
    addresses: list[str]
    port: int
    procs: list[subprocess.Popen[bytes]]

    @classmethod
    def start(cls, fleet: Fleet, count: int, *, shared_proc: bool = False) -> Servers:
        """Each sshd in a PID namespace of its own with its own ``/proc`` (``unshare``),
        unless ``shared_proc``: see :data:`OWN_PROC`."""
        addresses = [address(i) for i in range(count)]
        port = free_port_on(addresses[0])
        host_key = fleet.workdir / "fleet_host_key"
        key = asyncssh.generate_private_key("ssh-ed25519")
        key.write_private_key(str(host_key))
        host_key.chmod(0o600)
        public = key.export_public_key().decode().strip()
        procs = []
        for group in range(0, count, PER_SSHD):
            sdir = fleet.workdir / f"fleet-sshd{group // PER_SSHD}"
            sdir.mkdir(exist_ok=True)
            config = sdir / "sshd_config"
            listen = [f"ListenAddress {a}:{port}" for a in addresses[group : group + PER_SSHD]]
            config.write_text("\n".join([
                *listen,
                f"HostKey {host_key}",
                f"PidFile {sdir / 'sshd.pid'}",
                f"AuthorizedKeysFile {fleet.authorized_keys}",
                f"AllowUsers {fleet.user}",
                "UsePAM no", "StrictModes no", "PasswordAuthentication no",
                "KbdInteractiveAuthentication no", "PermitUserRC no", "PrintMotd no",
                "PrintLastLog no", "UseDNS no", "MaxStartups 1000", "LogLevel ERROR", "",
            ]))  # fmt: skip
            log = (sdir / "sshd.log").open("ab")
            wrap = [] if shared_proc else OWN_PROC
            procs.append(subprocess.Popen(
                [*wrap, SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log,
                stdin=subprocess.DEVNULL, start_new_session=True,
            ))  # fmt: skip
        for i in range(0, count, PER_SSHD):
            _wait_listening(addresses[i], port, procs[i // PER_SSHD])
        fleet.known_hosts.write_text("".join(f"[{a}]:{port} {public}\n" for a in addresses))
        return cls(fleet, addresses, port, procs)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            proc.wait(timeout=30)


def _wait_listening(host: str, port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while True:
        with socket.socket() as sock:
            if sock.connect_ex((host, port)) == 0:
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"sshd does not listen on {host}:{port}")
        time.sleep(0.02)


def write_repo(root: Path, servers: Servers, *, interval: int, tcp_port: int) -> Path:
    """A local git repo: the N hosts in its inventory, one component with 5 checks."""
    fleet = servers.fleet
    repo = root / "map-repo"
    (repo / "inventory").mkdir(parents=True)
    (repo / "maps").mkdir()
    (repo / "opsmap.yaml").write_text("poll_interval_secs: 30\n")
    shutil.copyfile(fleet.known_hosts, repo / "inventory" / "known_hosts")
    inventory = {
        "defaults": {
            "user": fleet.user, "transport": "ssh", "port": servers.port,
            "identity_file": fleet.client_key.name, "known_hosts": "inventory/known_hosts",
            "connect_timeout_secs": 20, "login_timeout_secs": 60,
        },
        "hosts": [
            {"name": f"h{i:04d}", "address": a, "labels": {"bench": "yes"}}
            for i, a in enumerate(servers.addresses)
        ],
    }  # fmt: skip
    (repo / "inventory" / "fleet.yaml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    probe_host = Host(name=HostName("h"), address="127.0.0.1", port=servers.port)
    checks = [
        {
            "name": check_type.replace("native:", ""),
            "type": check_type,
            "config": config.model_dump(exclude_defaults=True),
            "interval_secs": interval,
            "timeout_secs": 20,
        }
        for check_type, config in bench_checks(probe_host, tcp_port=tcp_port)
    ]
    fleet_map = {
        "name": "bench", "version": "1",
        "components": [{"id": "fleet", "name": "Fleet", "type": "host",
                        "hosts": {"labels": {"bench": "yes"}}, "checks": checks}],
    }  # fmt: skip
    (repo / "maps" / "bench.yaml").write_text(yaml.safe_dump(fleet_map, sort_keys=False))
    git = ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "fleet"], check=True)
    return repo


@dataclass
class Sample:
    at: float
    cpu_s: float
    runs: float
    ok: float
    lag: dict[float, float]


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sample(opsmap: Opsmap) -> Sample:
    if opsmap.proc.poll() is not None:
        raise SystemExit(f"opsmap run exited ({opsmap.proc.returncode}):\n{opsmap.tail(40)}")
    runs, ok, lag = 0.0, 0.0, {}
    for s in samples(opsmap.metrics()):
        if s.name == "opsmap_check_runs_total":
            runs += s.value
            ok += s.value if s.labels.get("state") == "OK" else 0.0
        elif s.name == "opsmap_check_schedule_lag_seconds_bucket":
            lag[float(s.labels["le"])] = s.value
    return Sample(time.monotonic(), cpu_s(opsmap.proc.pid), runs, ok, lag)


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The ``q`` quantile of the observations between two histogram samples."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1]
    if total <= 0:
        return float("nan")
    rank, low, below = q * total, 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if bound == float("inf"):
                return low
            share = (rank - below) / (count - below) if count > below else 1.0
            return low + (bound - low) * share
        low, below = bound, count
    return low


def latency_ms(opsmap: Opsmap, path: str, times: int = 10) -> tuple[float, float]:
    took = []
    for _ in range(times):
        start = time.perf_counter()
        code, _ = opsmap.request("GET", path)
        took.append(1000 * (time.perf_counter() - start))
        if code != 200:
            raise SystemExit(f"{path}: {code}")
        time.sleep(0.2)
    return statistics.median(took), max(took)


@dataclass(frozen=True)
class Figures:
    """One replica's figures over the window (the Nagios phase compares its CPU)."""

    checks_per_s: float
    cpu_ms_per_check: float
    rss_mb: float


def measure(
    replicas: Sequence[Opsmap], *, warmup: float, duration: float, label: str
) -> list[Figures]:
    time.sleep(warmup)
    before = [sample(r) for r in replicas]
    time.sleep(duration)
    after = [sample(r) for r in replicas]
    print(
        f"\n== {label}: {len(replicas)} replica(s), {duration:.0f} s after {warmup:.0f} s warm-up"
    )
    figures = []
    for i, (r, b, a) in enumerate(zip(replicas, before, after, strict=True)):
        checks = a.runs - b.runs
        cpu = a.cpu_s - b.cpu_s
        figures.append(
            Figures(checks / (a.at - b.at), 1000 * cpu / max(checks, 1), rss_mb(r.proc.pid))
        )
        status = latency_ms(r, "/api/v1/status")
        metrics = latency_ms(r, "/metrics")
        fleet = r.status().get("fleet")
        split = fleet["hosts_by_replica"] if fleet else "all"
        print(
            f"replica {i}: {figures[-1].checks_per_s:7.1f} checks/s  "
            f"CPU {figures[-1].cpu_ms_per_check:.3f} ms/check ({100 * cpu / (a.at - b.at):.0f}% "
            f"of a core)  RSS {figures[-1].rss_mb:.0f} MB  "
            f"lag p50 {1000 * quantile(b.lag, a.lag, 0.5):.1f} ms p99 "
            f"{1000 * quantile(b.lag, a.lag, 0.99):.1f} ms  "
            f"status {status[0]:.0f}/{status[1]:.0f} ms  metrics {metrics[0]:.0f}/{metrics[1]:.0f} "
            f"ms (median/max)  hosts {json.dumps(split)}"
        )
    total = sum(f.checks_per_s for f in figures)
    print(f"total: {total:.1f} checks/s; load average {os.getloadavg()}")
    return figures


def run_opsmap(
    processes: Processes,
    root: Path,
    name: str,
    repo: Path,
    fleet: Fleet,
    extra: Sequence[str] = (),
) -> Opsmap:
    return start_opsmap(
        processes,
        repo=str(repo),
        state_dir=root / f"state-{name}",
        log=root / f"{name}.log",
        poll_interval=30,
        timeout=120,
        extra_args=("--ssh-key-dir", str(fleet.workdir), "--log-level", "WARNING", *extra),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--interval", type=int, default=30)
    parser.add_argument("--duration", type=float, default=180.0)
    parser.add_argument("--warmup", type=float, default=40.0)
    parser.add_argument("--only", choices=["sqlite", "postgres", "nagios"])
    parser.add_argument(
        "--shared-proc",
        action="store_true",
        help="every sshd in the machine's own /proc (see OWN_PROC), not one of its own",
    )
    parser.add_argument(
        "--nagios-hosts", type=int, help="the first N hosts only for Nagios (default: --hosts)"
    )
    args = parser.parse_args()
    if not 1 <= args.hosts <= 60000:
        parser.error("--hosts: 1 to 60000")
    nagios_hosts = args.hosts if args.nagios_hosts is None else args.nagios_hosts
    if not 1 <= nagios_hosts <= args.hosts:
        parser.error("--nagios-hosts: 1 to --hosts")
    if not Path(SSHD).exists():
        print("openssh-server is not installed", file=sys.stderr)
        return 1
    root = Path(tempfile.mkdtemp(prefix="opsmap-fleet-bench-"))
    root.chmod(0o755)  # the test user reads authorized_keys below it
    fleet = Fleet(root / "fleet")
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)  # the tcp check's
    threading.Thread(target=accept_and_close, args=(listener,), daemon=True).start()
    servers = Servers.start(fleet, args.hosts, shared_proc=args.shared_proc)
    processes = Processes()
    print(f"{args.hosts} hosts on {len(servers.procs)} sshd (port {servers.port}), 5 checks "
          f"each every {args.interval} s: {5 * args.hosts / args.interval:.0f} checks/s due; "
          f"load average {os.getloadavg()}")  # fmt: skip
    try:
        tcp_port = listener.getsockname()[1]
        repo = write_repo(root, servers, interval=args.interval, tcp_port=tcp_port)
        sqlite: list[Figures] = []
        if args.only in (None, "sqlite"):
            one = run_opsmap(processes, root, "sqlite", repo, fleet)
            sqlite = measure([one], warmup=args.warmup, duration=args.duration, label="SQLite")
            stop_group(one.proc)
        if args.only in (None, "postgres"):
            cluster = Cluster()
            cluster.init()
            try:
                url_file = root / "state-url"
                url_file.write_text(cluster.url(cluster.database("bench")) + "\n")
                pair = [
                    run_opsmap(processes, root, name, repo, fleet,
                               ("--state-url-file", str(url_file), "--replica", name))
                    for name in ("r1", "r2")
                ]  # fmt: skip
                measure(pair, warmup=args.warmup, duration=args.duration, label="PostgreSQL")
                for opsmap in pair:
                    stop_group(opsmap.proc)
            finally:
                cluster.close()
        if args.only in (None, "nagios"):
            nagios_fleet.measure(
                root,
                nagios_fleet.Fleet(servers.addresses[:nagios_hosts], servers.port, fleet.user,
                                   fleet.client_key, fleet.known_hosts, tcp_port),
                interval=args.interval, warmup=args.warmup, duration=args.duration,
                opsmap_cpu_ms=sqlite[0].cpu_ms_per_check if sqlite else None,
            )  # fmt: skip
    finally:
        processes.close()
        servers.stop()
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() of accept_and_close
        listener.close()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
