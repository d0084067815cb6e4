"""``identity_file`` through a real ``opsmap run`` and ``opsmap check`` against a real sshd.

Only keys in the operator's ``--ssh-key-dir`` are read. A FIFO, a symlink to ``/dev/zero``,
a folder or an absent name there make that host UNREACHABLE with a reason, never freeze
the loop: ``/healthz`` answers and SIGTERM stops the process. A known_hosts file that is
not one is refused by name, its content never shown. Without ``--ssh-key-dir``
a name that is not a default key is refused unopened.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
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
SENTINEL = "root:SENTINEL-SHADOW-LINE:19000:0:99999:7:::"
BAD_KEYS = {
    "fifo-host": ("fifo_key", "is not a regular file (it is a FIFO)"),
    "zero-host": ("zero_key", "is a symlink (never followed)"),
    "folder-host": ("folder_key", "is not a regular file (it is a folder)"),
    "absent-host": ("absent_key", "does not exist"),
}


def key_dir(tmp_path: Path, fleet: Fleet) -> Path:
    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.copy(fleet.client_key, keys / "deploy_key")
    (keys / "deploy_key").chmod(0o600)
    os.mkfifo(keys / "fifo_key")
    os.symlink("/dev/zero", keys / "zero_key")
    (keys / "folder_key").mkdir()
    return keys


def repo_files(fleet: Fleet, port: int, public_key: str) -> dict[str, str | bytes | None]:
    hosts = [{"name": "good-host", "identity_file": "deploy_key", "labels": {"role": "e2e"}}]
    hosts += [
        {"name": name, "identity_file": key, "labels": {"role": "e2e"}}
        for name, (key, _) in BAD_KEYS.items()
    ]
    # a regular file of the repo, but no known_hosts: asyncssh would quote its line
    hosts.append(
        {
            "name": "garbage-host",
            "identity_file": "deploy_key",
            "known_hosts": "inventory/garbage_hosts",
            "labels": {"role": "e2e"},
        }
    )
    inventory = {
        "defaults": {
            "transport": "ssh",
            "user": fleet.user,
            "port": port,
            "known_hosts": "inventory/known_hosts",
            "connect_timeout_secs": 10,
            "login_timeout_secs": 20,
        },
        "hosts": [{**h, "address": "127.0.0.1"} for h in hosts],
    }
    up = command_check("up", "echo up", interval=3600, timeout=20)
    return {
        "inventory/fleet.yaml": yaml.safe_dump(inventory, sort_keys=False),
        "inventory/known_hosts": f"[127.0.0.1]:{port} {public_key}\n",
        "inventory/garbage_hosts": SENTINEL + "\n",
        f"maps/{MAP}.yaml": map_text([component("a", [up])]),
    }


def checks_by_host(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        k["host"]: k
        for m in status["maps"]
        for c in m["components"]
        for k in c["checks"]
        if k["last_run"] is not None
    }


def test_only_regular_keys_in_the_key_dir_are_read(
    sshd_fleet: Fleet, remote: BareRepo, clone: Clone, opsmap: Start, tmp_path: Path
) -> None:
    [server] = sshd_fleet.start(1)
    keys = key_dir(tmp_path, sshd_fleet)
    head = clone.commit(
        "fleet",
        author=ALICE,
        files=repo_files(sshd_fleet, server.port, sshd_fleet.public_host_key(server)),
    )
    clone.push()
    service = opsmap(remote.file_url, poll_interval=3600, extra_args=("--ssh-key-dir", str(keys)))
    service.wait_applied(head)
    found = wait_for(
        lambda: len(c := checks_by_host(service.status())) == 2 + len(BAD_KEYS) and c,
        what=f"every host's check to have run\n{service.tail()}",
        timeout=60,
    )
    assert (found["good-host"]["state"], found["good-host"]["message"]) == ("OK", "up")
    for name, (key, reason) in BAD_KEYS.items():
        check = found[name]
        assert check["state"] == "UNKNOWN", check
        assert check["message"] == f"host unreachable: identity_file '{key}': {reason}", check
    assert found["garbage-host"]["message"] == (
        "host unreachable: known_hosts 'inventory/garbage_hosts': not a known_hosts file"
    )
    assert "SENTINEL" not in json.dumps(service.status())
    assert service.healthz() == 200
    assert stop_group(service.proc, signal.SIGTERM) == 0, service.stderr()
    assert "Traceback" not in service.stderr()
    assert "SENTINEL" not in service.stderr()


def test_opsmap_check_reads_keys_only_from_the_key_dir(
    sshd_fleet: Fleet, clone: Clone, tmp_path: Path
) -> None:
    [server] = sshd_fleet.start(1)
    keys = key_dir(tmp_path, sshd_fleet)
    clone.write(repo_files(sshd_fleet, server.port, sshd_fleet.public_host_key(server)))

    def check(*extra: str) -> dict[str, dict[str, Any]]:
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", "check", "--format", "json", *extra],
            cwd=clone.path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        return {row["host"]: row for row in yaml.safe_load(done.stdout)}

    allowed = check("--ssh-key-dir", str(keys))
    assert allowed["good-host"]["state"] == "OK"
    assert allowed["fifo-host"]["message"].endswith("is not a regular file (it is a FIFO)")
    without = check()
    assert without["good-host"]["state"] == "UNKNOWN"
    assert "no key directory is allowed" in without["good-host"]["message"]
