"""A host that prints 300 MB costs the reconciler its cap, not 300 MB: measured as the
peak RSS of a fresh process (its ``VmHWM``, reset with ``/proc/self/clear_refs`` once the
connection is warm) while one check floods, over a real sshd and over the local
transport. Before output was bounded while read, the same flood added ~880 MB."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sshd import Fleet

pytestmark = [pytest.mark.sshd, pytest.mark.slow]

FLOOD = 300_000_000
#: Growth of the peak RSS allowed during the flood (the caps are 2 x 64 KiB).
ALLOWED_KB = 8 * 1024

SCRIPT = """
import asyncio, json, sys
from pathlib import Path
from agentless.inventory import Host
from agentless.local import LocalTransport
from agentless.runner import CheckTarget, run_check
from agentless.checks.config import CommandConfig
from agentless.ssh import SshSettings, SshTransport

def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise LookupError(key)

async def main(spec):
    host = Host(**spec["host"])
    if host.transport == "local":
        transport = LocalTransport()
    else:
        settings = SshSettings(
            base_dir=Path(spec["workdir"]), client_keys=[spec["key"]], use_agent=False
        )
        transport = SshTransport(settings)
    try:
        flood = CommandConfig(command=spec["command"])
        warm = CommandConfig(command="echo warm")
        await run_check(CheckTarget("m/c/warm", host, "command", warm, 30), transport=transport)
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS from here
        before = status("VmRSS")
        target = CheckTarget("m/c/flood", host, "command", flood, 300)
        run = await run_check(target, transport=transport)
        peak = status("VmHWM")
    finally:
        await transport.aclose()
    print(json.dumps({"before_kb": before, "peak_kb": peak,
                      "state": run.outcome.state.name, "message": run.outcome.message}))

asyncio.run(main(json.loads(sys.argv[1])))
"""


def measure(spec: dict[str, object]) -> dict[str, object]:
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def check_bounded(result: dict[str, object]) -> None:
    assert result["state"] == "UNKNOWN", result
    assert result["message"] == (
        f"output over 65536 bytes (stdout {FLOOD} bytes; the rest was dropped)"
    )
    before, peak = result["before_kb"], result["peak_kb"]
    assert isinstance(before, int)
    assert isinstance(peak, int)
    assert peak - before < ALLOWED_KB, f"RSS {before} kB before, {peak} kB at the peak"


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_a_300_mb_flood_over_ssh_leaves_the_rss_where_it_was(sshd_fleet: Fleet) -> None:
    [server] = sshd_fleet.start(1)
    host = dataclasses.asdict(sshd_fleet.host(server))
    spec = {
        "host": host,
        "workdir": str(sshd_fleet.workdir),
        "key": str(sshd_fleet.client_key),
        "command": f"head -c {FLOOD} /dev/zero",
    }
    check_bounded(measure(spec))


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_a_300_mb_flood_on_the_local_transport_leaves_the_rss_where_it_was() -> None:
    host = {"name": "localhost", "address": "127.0.0.1", "transport": "local"}
    check_bounded(measure({"host": host, "command": f"head -c {FLOOD} /dev/zero"}))
