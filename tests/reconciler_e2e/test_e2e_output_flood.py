"""A host that floods, through a real ``opsmap run``: a check printing 300 MB over a real
sshd and another on the local transport are UNKNOWN "output over N bytes" (N from
``--max-output``), the small checks beside them stay OK, and the reconciler's peak RSS
(``VmHWM`` of its ``/proc/<pid>/status``, reset through ``clear_refs`` once the first
revision ran) stays within a few MB of where it was before the floods."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_support import MAP, Opsmap, command_check, component, map_text, stop_group, wait_for
from gitrepos import ALICE, BareRepo, Clone
from sshd import Fleet

pytestmark = [pytest.mark.sshd, pytest.mark.slow]

Start = Callable[..., Opsmap]
FLOOD = 300_000_000
CAP = 100 * 1024
#: Growth of the peak RSS allowed while both floods run and a revision is applied
#: (before output was bounded while read, one such flood added ~880 MB).
ALLOWED_KB = 16 * 1024


def files(fleet: Fleet, port: int, public_key: str, *, flood: bool) -> dict[str, str]:
    inventory = {
        "hosts": [
            {
                "name": "ssh-host",
                "transport": "ssh",
                "address": "127.0.0.1",
                "port": port,
                "user": fleet.user,
                "identity_file": "deploy_key",
                "known_hosts": "inventory/known_hosts",
                "labels": {"role": "e2e"},
            },
            {"name": "local-host", "transport": "local", "labels": {"role": "e2e"}},
        ]
    }
    checks = [command_check("small", "echo small", interval=3600, timeout=20)]
    if flood:
        command = f"head -c {FLOOD} /dev/zero"
        checks.append(command_check("flood", command, interval=3600, timeout=300))
    return {
        "inventory/fleet.yaml": yaml.safe_dump(inventory, sort_keys=False),
        "inventory/known_hosts": f"[127.0.0.1]:{port} {public_key}\n",
        f"maps/{MAP}.yaml": map_text([component("a", checks)]),
    }


def runs(service: Opsmap, name: str) -> dict[str, dict[str, Any]]:
    return {
        k["host"]: k
        for m in service.status()["maps"]
        for c in m["components"]
        for k in c["checks"]
        if k["name"] == name and k["last_run"] is not None
    }


def memory_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise LookupError(key)


def test_a_flooding_check_is_unknown_and_costs_the_reconciler_no_memory(
    sshd_fleet: Fleet, remote: BareRepo, clone: Clone, opsmap: Start, tmp_path: Path
) -> None:
    [server] = sshd_fleet.start(1)
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "deploy_key").write_bytes(sshd_fleet.client_key.read_bytes())
    (keys / "deploy_key").chmod(0o600)
    public = sshd_fleet.public_host_key(server)
    clone.commit("small", author=ALICE, files=files(sshd_fleet, server.port, public, flood=False))
    clone.push()
    extra = ("--ssh-key-dir", str(keys), "--max-output", "100K")
    service = opsmap(remote.file_url, poll_interval=1, extra_args=extra)
    pid = service.proc.pid
    wait_for(lambda: len(runs(service, "small")) == 2, what=f"small checks\n{service.tail()}")
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS from here
    before = memory_kb(pid, "VmRSS")

    head = clone.commit(
        "flood", author=ALICE, files=files(sshd_fleet, server.port, public, flood=True)
    )
    clone.push()
    service.wait_applied(head)
    flooded = wait_for(
        lambda: len(found := runs(service, "flood")) == 2 and found,
        what=f"both floods to end\n{service.tail()}",
        timeout=300,
    )
    peak = memory_kb(pid, "VmHWM")
    message = f"output over {CAP} bytes (stdout {FLOOD} bytes; the rest was dropped)"
    for host in ("ssh-host", "local-host"):
        assert (flooded[host]["state"], flooded[host]["message"]) == ("UNKNOWN", message)
    small = runs(service, "small")
    assert {host: k["state"] for host, k in small.items()} == {
        "ssh-host": "OK",
        "local-host": "OK",
    }
    assert peak - before < ALLOWED_KB, f"RSS {before} kB before the floods, {peak} kB at the peak"
    assert service.healthz() == 200
    assert stop_group(service.proc, signal.SIGTERM) == 0, service.stderr()
    assert "Traceback" not in service.stderr()
