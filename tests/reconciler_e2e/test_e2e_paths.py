"""A pull request cannot reach outside the repo through ``opsmap run``, nor read its secrets.

Real ``opsmap run`` on a real remote (local transport): an inventory naming a
``known_hosts`` outside the repo (``..``, absolute, a folder, a symlink, an oversize file)
is a rejected revision at its file:line, deletes nothing and shows nothing of the file;
local checks see none of OpsMap's secrets; ``mask:`` hides a pattern in the status.
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

import yaml
from e2e_support import (
    HOST,
    Opsmap,
    command_check,
    component,
    map_text,
    stop_group,
    wait_for,
)
from gitrepos import ALICE, BareRepo, Clone
from prometheus_client import CollectorRegistry

from agentless.local import LocalTransport
from reconciler.clock import VirtualClock
from reconciler.git.mirror import GitSource, GitSourceError
from reconciler.loop.reconciler import Reconciler, ReconcilerOptions
from reconciler.repo.loader import load_repo
from reconciler.store.sqlite import SqliteStore

Start = Callable[..., Opsmap]
SENTINEL = "root:SENTINEL-PASSWD-LINE:0:0:root:/root:/bin/sh"
INVENTORY = "inventory/local.yaml"


def inventory(**fields: object) -> str:
    host = {"name": HOST, "transport": "local", "labels": {"role": "e2e"}, **fields}
    return yaml.safe_dump({"hosts": [host]}, sort_keys=False)


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def files(**fields: object) -> dict[str, str | bytes | None]:
    ok = command_check("ok", "echo fine", interval=3600)
    return {
        INVENTORY: inventory(**fields),
        "maps/e2e.yaml": map_text([component("a", [ok])]),
        "inventory/known_hosts": "[10.9.9.9]:22 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI\n",
    }


def wait_attempted(service: Opsmap, sha: str) -> dict[str, Any]:
    return wait_for(
        lambda: (s := service.status())["last_attempted_revision"] == sha and s,
        what=f"revision {sha} attempted\n{service.tail()}",
    )


def test_known_hosts_outside_the_repo_is_rejected_and_touches_nothing(
    remote: BareRepo, clone: Clone, opsmap: Start, tmp_path: Path, state_dir: Path
) -> None:
    # checkout/../../x from the state dir's checkout folder is this file
    victim = state_dir.parent / "x"
    victim.write_text("must survive\n")
    passwd = tmp_path / "passwd"
    passwd.write_text(SENTINEL + "\n")

    good = clone.commit("good", author=ALICE, files=files(known_hosts="inventory/known_hosts"))
    clone.push()
    service = opsmap(remote.file_url, poll_interval=0.5)
    service.wait_applied(good)
    assert (state_dir / "checkout" / "inventory" / "known_hosts").is_file()

    os.symlink(passwd, clone.path / "inventory" / "linked_hosts")
    (clone.path / "inventory" / "big_hosts").write_bytes(b"#" * (1024 * 1024 + 1))
    attempts = {
        "../../x": "contains '..'",
        str(passwd): "absolute path",
        "inventory": "not a regular file",
        "inventory/linked_hosts": "symlink",
        "inventory/big_hosts": "over the 1048576-byte limit",
    }
    for value, reason in attempts.items():
        text = inventory(known_hosts=value)
        bad = clone.commit(f"known_hosts {value}", author=ALICE, files={INVENTORY: text})
        clone.push()
        status = wait_attempted(service, bad)
        assert status["last_applied_revision"] == good
        # a committed symlink is also refused on its own (code `symlink`), by its name
        errors = status["validation_errors"]
        [error] = [e for e in errors if e["code"] == "unsafe-known-hosts"]
        assert all(e["code"] == "symlink" for e in errors if e is not error), errors
        assert (error["file"], error["line"], error["code"]) == (
            INVENTORY,
            line_of(text, "known_hosts:"),
            "unsafe-known-hosts",
        ), error
        assert reason in error["message"], error
        assert victim.read_text() == "must survive\n"
        assert service.healthz() == 200

    body = json.dumps(service.status())
    assert "SENTINEL" not in body
    assert stop_group(service.proc, signal.SIGTERM) == 0, service.stderr()
    log = service.stderr()
    assert "SENTINEL" not in log
    assert "Traceback" not in log, log
    assert victim.read_text() == "must survive\n"
    assert passwd.read_text() == SENTINEL + "\n"


def test_local_checks_get_no_secret_and_mask_hides_output(
    remote: BareRepo, clone: Clone, opsmap: Start, state_dir: Path
) -> None:
    webhook, token, tz = "TOPSECRET-hook-31337", "TOPSECRET-token-4242", "TOPSECRET-tz-99"
    clean = command_check(
        "clean",
        "if env | grep -q -e OPSMAP_ -e TOPSECRET; then echo leaked; exit 2; fi; echo clean",
        interval=3600,
    )
    echo = command_check(
        "echo", 'echo "hook=$OPSMAP_WEBHOOK_SECRET token=$MY_TOKEN tz=$TZ"; env', interval=3600
    )
    masked = command_check("masked", "echo 'user=bob token=MASK-ME-1234 done'", interval=3600)
    first = clone.commit(
        "checks",
        author=ALICE,
        files={
            INVENTORY: inventory(),
            "maps/e2e.yaml": map_text([component("a", [clean, echo, masked])]),
            "opsmap.yaml": yaml.safe_dump({"mask": [r"token=\S++"]}),
        },
    )
    clone.push()
    service = opsmap(
        remote.file_url,
        poll_interval=3600,
        secret=webhook,
        env={"MY_TOKEN": token, "TZ": tz},
        extra_args=("--secret-env", "TZ"),
    )
    service.wait_applied(first)
    assert service.wait_check("a", "clean", "OK")["message"] == "clean"
    said = service.wait_check("a", "echo", "OK")["message"]
    assert said == "hook= token= tz=", said
    shown = service.wait_check("a", "masked", "OK")["message"]
    assert shown == "user=bob *** done", shown

    body = json.dumps(service.status())
    for secret in (webhook, token, tz, "MASK-ME"):
        assert secret not in body, secret
    assert stop_group(service.proc, signal.SIGTERM) == 0, service.stderr()
    stored = [p for p in state_dir.rglob("*") if p.is_file() and "git" not in p.parts]
    assert stored
    for path in stored:
        data = path.read_bytes()
        for secret in (webhook, token, tz, "MASK-ME"):
            assert secret.encode() not in data, (secret, path)


def test_materialize_writes_and_unlinks_only_inside_the_checkout(
    remote: BareRepo, clone: Clone, tmp_path: Path
) -> None:
    """Even a revision that got past validation cannot make the checkout reach out."""
    state = tmp_path / "state"
    checkout = state / "checkout"
    victim = state.parent / "x"
    victim.write_text("must survive\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    source = GitSource(remote.url, cache_dir=tmp_path / "cache", timeout_s=30)
    reconciler = Reconciler(
        source=source,
        store=SqliteStore(state),
        transport=LocalTransport(),
        clock=VirtualClock(),
        metrics_registry=CollectorRegistry(),
        options=ReconcilerOptions(checkout_dir=checkout),
        source_errors=(GitSourceError,),
    )
    try:
        for value in ("../../x", str(victim), "inventory/known_hosts"):
            sha = clone.commit(value, author=ALICE, files=files(known_hosts=value))
            clone.push()
            source.fetch()
            reconciler._materialize(sha, load_repo(source.files_at(sha)))
            assert victim.read_text() == "must survive\n"
        assert (checkout / "inventory" / "known_hosts").read_text().startswith("[10.9.9.9]")

        # a folder of the checkout replaced by a symlink out: nothing written through it
        shutil.rmtree(checkout / "inventory")
        os.symlink(outside, checkout / "inventory")
        reconciler._materialize(sha, load_repo(source.files_at(sha)))
        assert list(outside.iterdir()) == []
        # nor unlinked through it, when the file is gone from the revision
        (outside / "known_hosts").write_text("keep\n")
        gone = clone.commit("gone", author=ALICE, files={"inventory/known_hosts": None})
        clone.push()
        source.fetch()
        reconciler._materialize(gone, load_repo(source.files_at(gone)))
        assert (outside / "known_hosts").read_text() == "keep\n"
    finally:
        reconciler.store.close()


def test_run_and_check_refuse_a_key_dir_that_is_no_folder(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-keys")

    def opsmap_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *args, "--repo", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    for command in ("run", "check"):
        done = opsmap_cli(command, "--ssh-key-dir", missing)
        assert done.returncode == 2, done.stderr
        assert f"--ssh-key-dir {missing}: not a directory" in done.stderr
    done = opsmap_cli("run", "--secret-env", "A,B")
    assert done.returncode == 2
    assert "--secret-env takes a variable name" in done.stderr
