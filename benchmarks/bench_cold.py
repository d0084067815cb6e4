"""A cold, ``opsmap check``-like run for the benchmark: import, connect, run once, exit.

``python benchmarks/bench_cold.py SPEC.json`` reads the hosts the benchmark started, runs
:data:`BENCH_CHECKS` once on every host over SSH and exits 0 when every check is OK.
``benchmarks/checks_bench.py --cold-cmd`` swaps this for the real CLI.

SPEC.json: ``{"base_dir": str, "client_keys": [str], "tcp_port": int | null, "hosts":
[{"name", "address", "port", "user", "known_hosts"}]}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from agentless.checks.config import (
    CommandConfig,
    DiskSpaceConfig,
    MemoryConfig,
    ProbeConfig,
    ProcessConfig,
    TcpConfig,
)
from agentless.inventory import Host
from agentless.result import CheckState, HostName
from agentless.runner import CheckRun, CheckTarget, run_checks
from agentless.ssh import SshSettings, SshTransport


def bench_checks(host: Host, *, tcp_port: int | None = None) -> list[tuple[str, ProbeConfig]]:
    """The five checks per host of the benchmark (all OK on a healthy test sshd).

    ``tcp_port`` defaults to the host's sshd port; the benchmark passes a plain listener's
    port instead, since every connect to sshd makes it fork and re-exec itself.
    """
    return [
        ("tcp", TcpConfig(port=tcp_port or host.port)),
        ("process", ProcessConfig(name="sshd")),
        ("native:memory", MemoryConfig(warning_percent=99, critical_percent=100)),
        ("native:disk_space", DiskSpaceConfig(path="/", warning_percent=99, critical_percent=100)),
        ("command", CommandConfig(command="echo OK - fine")),
    ]


def bench_targets(
    hosts: Sequence[Host], *, timeout_s: float = 20.0, tcp_port: int | None = None
) -> list[CheckTarget]:
    return [
        CheckTarget(f"{host.name}/{check_type}", host, check_type, config, timeout_s)
        for host in hosts
        for check_type, config in bench_checks(host, tcp_port=tcp_port)
    ]


def load_spec(path: Path) -> tuple[SshSettings, list[Host], int | None]:
    spec = json.loads(path.read_text())
    settings = SshSettings(
        base_dir=Path(spec["base_dir"]), client_keys=spec["client_keys"], use_agent=False
    )
    hosts = [
        Host(
            name=HostName(h["name"]),
            address=h["address"],
            port=int(h["port"]),
            user=h["user"],
            known_hosts=h["known_hosts"],
        )
        for h in spec["hosts"]
    ]
    return settings, hosts, spec.get("tcp_port")


async def run_once(
    settings: SshSettings, hosts: Sequence[Host], tcp_port: int | None
) -> list[CheckRun]:
    transport = SshTransport(settings)
    try:
        return await run_checks(bench_targets(hosts, tcp_port=tcp_port), transport=transport)
    finally:
        await transport.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python benchmarks/bench_cold.py SPEC.json", file=sys.stderr)
        return 2
    settings, hosts, tcp_port = load_spec(Path(args[0]))
    runs = asyncio.run(run_once(settings, hosts, tcp_port))
    bad = [r for r in runs if r.outcome.state is not CheckState.OK]
    for run in bad:
        print(f"{run.target.key}: {run.outcome.state.name} {run.outcome.message}")
    print(f"{len(runs) - len(bad)}/{len(runs)} checks OK")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
