"""The browser tests' site: a real map repo and a real ``opsmap run`` (local transport)
on it, with a TCP port the test owns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from e2e_support import Listener, Opsmap, Processes, start_opsmap
from gitrepos import ALICE, BareRepo, Clone

HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
FORGE = "https://github.com/example-org/ops-maps"
TRUSTED = ["--trusted-user-header", "X-Forwarded-Email", "--trusted-proxy", "127.0.0.1"]


def command(name: str, text: str) -> dict[str, object]:
    return {"name": name, "type": "command", "config": {"command": text},
            "interval_secs": 1, "timeout_secs": 5, "max_check_attempts": 1}  # fmt: skip


def repo_files(port: int) -> dict[str, str | bytes | None]:
    hosts = {"labels": {"role": "page"}}
    shop = {
        "name": "shop",
        "version": "1",
        "description": "The shop, for the page's tests",
        "components": [
            {"id": "db", "name": "Database", "type": "database", "hosts": hosts,
             "dependencies": ["zookeeper"],
             "checks": [{"name": "port", "type": "tcp",
                         "config": {"port": port, "host": "127.0.0.1"},
                         "interval_secs": 1, "timeout_secs": 2, "max_check_attempts": 1}]},
            {"id": "api", "name": HOSTILE, "type": "service", "hosts": hosts,
             "description": HOSTILE, "dependencies": ["db"],
             "checks": [command("hostile", f"echo '{HOSTILE}'")]},
            {"id": "web", "name": "Web front", "type": "service", "hosts": hosts,
             "dependencies": ["api"], "checks": [command("alive", "true")],
             "actions": [{"name": "restart", "command": "true"}]},
            {"id": "batch", "name": "Batch jobs", "hosts": hosts,
             "checks": [command("backlog", "echo 'WARNING - 40 jobs queued'; exit 1")]},
            {"id": "legacy", "name": "Legacy, no checks", "hosts": hosts},
        ],
    }  # fmt: skip
    secret = {
        "name": "secret",
        "components": [{"id": "vault", "hosts": hosts, "checks": [command("alive", "true")]}],
    }
    policy = {
        "groups": {"shop-team": ["olga@example.com"]},
        "permissions": [
            {"group": "shop-team", "role": "operator", "maps": ["shop"]},
            {"user": ALICE.email, "role": "operator", "maps": ["shop"]},
        ],
    }
    inventory = {
        "hosts": [{"name": "page-local", "transport": "local", "labels": {"role": "page"}}]
    }
    settings = {"forge": {"kind": "github", "url": FORGE}}
    return {
        "opsmap.yaml": yaml.safe_dump(settings),
        "inventory/local.yaml": yaml.safe_dump(inventory),
        "maps/shop.yaml": yaml.safe_dump(shop, sort_keys=False),
        "maps/secret.yaml": yaml.safe_dump(secret, sort_keys=False),
        "policies/shop.yaml": yaml.safe_dump(policy, sort_keys=False),
    }


@dataclass
class Site:
    opsmap: Opsmap
    listener: Listener
    sha: str
    clone: Clone

    @property
    def url(self) -> str:
        return f"http://{self.opsmap.host}:{self.opsmap.port}/"


def start_site(
    base: Path,
    processes: Processes,
    *,
    extra_args: list[str],
    headers: dict[str, str] | None = None,
) -> Site:
    """``headers``: what the helpers send (a person's identity behind the trusted proxy)."""
    listener = Listener().open()
    remote = BareRepo.create(base / "remote.git")
    clone = Clone.create(remote, base / "work")
    sha = clone.commit("the shop map", author=ALICE, files=repo_files(listener.port))
    clone.push()
    opsmap = start_opsmap(
        processes,
        repo=remote.url,
        state_dir=base / "state",
        log=base / "opsmap.log",
        extra_args=extra_args,
        headers=headers,
    )
    opsmap.wait_applied(sha)
    return Site(opsmap, listener, sha, clone)
