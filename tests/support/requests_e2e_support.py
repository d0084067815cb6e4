"""Helpers for the requests end-to-end tests: a map repo on the sshd fleet, ``opsmap run``.

A :class:`World` is one real ``file://`` bare remote, a clone where people commit, merge
and push, a *site* (a directory on the test host, this machine, that the SSH test user
may write to, holding a small service script and the files actions append to), and one
``opsmap run`` following the remote with its own state directory.

What happened is read from the outside only: the state SQLite (the ``requests`` journal
and the ``audit_records`` outbox, opened read-only), ``/api/v1/status`` and ``/metrics``
over HTTP, and the git notes through ``opsmap audit --repo <remote>``. Every wait is a
bounded poll (a hang guard, never a timing assertion).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml
from e2e_support import Opsmap, Processes, counter, sample_value, start_opsmap, wait_for
from gitrepos import BareRepo, Clone, git
from sshd import Fleet, Sshd, free_port

from reconciler.git.mirror import Person

WAIT_S = 90.0
"""Bound of a wait for a request's outcome or a delivery (hang guard only)."""
MAP = "trading"
APP_HOST = "app-01"
DB_HOST = "db-01"
FINISHED = ("succeeded", "failed", "denied", "unknown")

SAM = Person("Sam SRE", "sam@example.com")
"""sre-team: admin."""
DMITRI = Person("Dmitri Ops", "dmitri@example.com")
TINA = Person("Tina Ops", "tina@example.com")
"""trading-ops: operator, no stop/restart of postgresql, may clear_cache and purge."""
ERIN = Person("Erin Dev", "erin@example.com")
FRANK = Person("Frank Dev", "frank@example.com")
"""developers: viewer, may restart api-server and clear its cache."""
BOB_EXTERNAL = Person("Bob External", "bob@external.com")
"""The seed's external consultant: viewer only."""

SERVICE = """\
#!/bin/sh
# service.sh start|stop|restart PORT: a listening process in the background, a pid file.
set -u
here=$(dirname "$0")
pidfile="$here/svc-$2.pid"
start() {
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then return 0; fi
    setsid nohup python3 -m http.server "$1" --bind 127.0.0.1 --directory "$here" \\
        >"$here/svc-$1.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    echo "started $1"
}
stop() {
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null
    i=0
    while kill -0 "$pid" 2>/dev/null; do
        i=$((i + 1)); [ "$i" -gt 100 ] && return 1
        sleep 0.1
    done
    rm -f "$pidfile"
    echo "stopped $1"
}
case "$1" in
start) start "$2" ;;
stop) stop "$2" ;;
restart) stop "$2" && start "$2" ;;
*) echo "usage: $0 start|stop|restart PORT" >&2; exit 2 ;;
esac
"""


# -- the site on the test host -------------------------------------------------------------


@dataclass
class Site:
    """A directory on the test host where the SSH test user may write."""

    dir: Path

    @classmethod
    def create(cls, path: Path) -> Site:
        path.mkdir(parents=True)
        path.chmod(0o777)
        site = cls(path)
        site.service.write_text(SERVICE)
        site.service.chmod(0o755)
        return site

    @property
    def service(self) -> Path:
        return self.dir / "service.sh"

    def file(self, name: str) -> Path:
        return self.dir / name

    def lines(self, name: str) -> list[str]:
        """The lines an action appended to ``name`` (none if it never ran)."""
        path = self.file(name)
        return path.read_text().splitlines() if path.exists() else []

    def pid(self, port: int) -> int | None:
        path = self.dir / f"svc-{port}.pid"
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text().strip())
        return None

    def kill_services(self) -> None:
        """Whatever service a test left running (it runs as the test user)."""
        for pidfile in self.dir.glob("svc-*.pid"):
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)


def alive(pid: int | None) -> bool:
    """True for a live (not zombie) process."""
    if pid is None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


# -- the map repo --------------------------------------------------------------------------


def service_actions(site: Site, port: int) -> list[dict[str, Any]]:
    """start, stop and restart of a real listening service on ``port``."""
    completion = {
        "type": "tcp",
        "config": {"port": port},
        "timeout_secs": 30,
        "interval_secs": 1,
    }
    run = f"{site.service} %s {port}"
    return [
        {
            "name": "start",
            "command": run % "start",
            "async": True,
            "timeout_secs": 60,
            "completion_check": completion,
        },
        {"name": "stop", "command": run % "stop", "timeout_secs": 60},
        {
            "name": "restart",
            "command": run % "restart",
            "async": True,
            "timeout_secs": 60,
            "completion_check": completion,
        },
    ]


def component(
    id_: str,
    actions: Sequence[Mapping[str, Any]],
    *,
    role: str = "app",
    dependencies: Sequence[str] = (),
) -> dict[str, Any]:
    return {
        "id": id_,
        "name": id_.replace("-", " ").title(),
        "type": "service",
        "dependencies": list(dependencies),
        "hosts": {"labels": {"role": role}},
        "actions": [dict(a) for a in actions],
    }


def map_yaml(components: Sequence[Mapping[str, Any]], *, name: str = MAP) -> str:
    return yaml.safe_dump(
        {
            "name": name,
            "version": "1",
            "description": "requests end-to-end test map",
            "components": [dict(c) for c in components],
        },
        sort_keys=False,
    )


def inventory_yaml(fleet: Fleet, server: Sshd) -> str:
    """Two hosts on the one test sshd: ``app-01`` (role app) and ``db-01`` (role db)."""
    return yaml.safe_dump(
        {
            "defaults": {
                "transport": "ssh",
                "user": fleet.user,
                "port": server.port,
                "identity_file": fleet.client_key.name,
                "known_hosts": "inventory/known_hosts",
                "connect_timeout_secs": 10,
                "login_timeout_secs": 20,
            },
            "hosts": [
                {"name": APP_HOST, "address": "127.0.0.1", "labels": {"role": "app"}},
                {"name": DB_HOST, "address": "127.0.0.1", "labels": {"role": "db"}},
            ],
        },
        sort_keys=False,
    )


def known_hosts_text(fleet: Fleet, server: Sshd) -> str:
    return f"[127.0.0.1]:{server.port} {fleet.public_host_key(server)}\n"


GROUPS = {
    "sre-team": [SAM.email],
    "trading-ops": [DMITRI.email, TINA.email],
    "developers": [ERIN.email, FRANK.email],
}


SRE_ADMIN = {"group": "sre-team", "role": "admin", "maps": [MAP]}


def trading_bindings() -> list[dict[str, Any]]:
    """The seed's trading-platform permissions (reference/trading-platform.map.yaml)."""
    return [
        SRE_ADMIN,
        {
            "group": "trading-ops",
            "role": "operator",
            "maps": [MAP],
            "overrides": {
                "components": {"postgresql": {"deny": ["stop", "restart"]}},
                "actions": {"api-server": {"clear_cache": "allow"}, "ledger": {"purge": "allow"}},
            },
        },
        {
            "group": "developers",
            "role": "viewer",
            "maps": [MAP],
            "overrides": {
                "components": {"api-server": {"allow": ["view", "logs", "restart"]}},
                "actions": {"api-server": {"clear_cache": "allow"}},
            },
        },
        {"user": BOB_EXTERNAL.email, "role": "viewer", "maps": [MAP]},
    ]


def policy_yaml(
    bindings: Sequence[Mapping[str, Any]] = (),
    *,
    groups: Mapping[str, Sequence[str]] | None = None,
    signers: Sequence[Mapping[str, str]] = (),
) -> str:
    doc: dict[str, Any] = {"description": "requests end-to-end test policies"}
    if groups:
        doc["groups"] = {k: list(v) for k, v in groups.items()}
    if bindings:
        doc["permissions"] = [dict(b) for b in bindings]
    if signers:
        doc["signers"] = [dict(s) for s in signers]
    return yaml.safe_dump(doc, sort_keys=False)


def settings_yaml(**extra: Any) -> str:
    return yaml.safe_dump({"poll_interval_secs": 1, **extra}, sort_keys=False)


def request_yaml(
    component_id: str,
    action: str,
    *,
    reason: str = "end-to-end test",
    hosts: Sequence[str] | None = None,
    map_name: str = MAP,
) -> str:
    doc: dict[str, Any] = {
        "map": map_name,
        "component": component_id,
        "action": action,
        "reason": reason,
    }
    if hosts is not None:
        doc["hosts"] = list(hosts)
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


# -- the world -----------------------------------------------------------------------------


@dataclass
class World:
    """A remote, a clone, a site, and (while running) one ``opsmap run`` following it."""

    root: Path
    fleet: Fleet
    server: Sshd
    remote: BareRepo
    clone: Clone
    site: Site
    processes: Processes = field(default_factory=Processes)
    state_dir: Path = field(init=False)
    log: Path = field(init=False)
    opsmap: Opsmap | None = None
    ports: dict[str, int] = field(default_factory=dict)
    state_url: str | None = None
    """A PostgreSQL URL: the state is there (given by a file), not in SQLite."""

    def __post_init__(self) -> None:
        self.state_dir = self.root / "state"
        self.log = self.root / "opsmap.log"

    @classmethod
    def create(cls, root: Path, fleet: Fleet, server: Sshd, *, site_name: str) -> World:
        root.mkdir(parents=True, exist_ok=True)
        remote = BareRepo.create(root / "remotes" / "map.git")
        clone = Clone.create(remote, root / "work")
        site = Site.create(fleet.workdir / site_name)
        return cls(root, fleet, server, remote, clone, site)

    def port(self, name: str) -> int:
        """A free port for the service named ``name``, the same one each time it is asked."""
        return self.ports.setdefault(name, free_port())

    def base_files(self) -> dict[str, str | bytes | None]:
        """Settings, the inventory of the test sshd and its known_hosts, the groups."""
        return {
            "opsmap.yaml": settings_yaml(),
            "inventory/fleet.yaml": inventory_yaml(self.fleet, self.server),
            "inventory/known_hosts": known_hosts_text(self.fleet, self.server),
            "policies/groups.yaml": policy_yaml(groups=GROUPS),
        }

    # -- the reconciler --------------------------------------------------------------

    def start(self, *extra_args: str) -> Opsmap:
        """Start ``opsmap run`` on the remote's ``file://`` URL, polling every second
        (``extra_args`` added to its command line)."""
        assert self.opsmap is None or self.opsmap.proc.poll() is not None
        if self.state_url is not None:
            url_file = self.root / "state-url"
            url_file.write_text(self.state_url + "\n")
            url_file.chmod(0o600)
            extra_args = ("--state-url-file", str(url_file), *extra_args)
        self.opsmap = start_opsmap(
            self.processes,
            repo=self.remote.file_url,
            state_dir=self.state_dir,
            log=self.log,
            poll_interval=1.0,
            timeout=60,
            extra_args=("--ssh-key-dir", str(self.fleet.workdir), *extra_args),
        )
        return self.opsmap

    @property
    def running(self) -> Opsmap:
        assert self.opsmap is not None, "opsmap run was not started"
        assert self.opsmap.proc.poll() is None, (
            f"opsmap run exited with {self.opsmap.proc.returncode}:\n{self.opsmap.tail(60)}"
        )
        return self.opsmap

    def stop(self) -> int:
        """SIGTERM, wait; the exit status."""
        proc = self.running.proc
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        return proc.wait(timeout=60)

    def crash(self) -> None:
        """kill -9 the reconciler (its whole process group: it and any git child)."""
        proc = self.running.proc
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def close(self) -> None:
        self.processes.close()
        self.site.kill_services()

    def tail(self) -> str:
        return self.opsmap.tail(60) if self.opsmap is not None else "(opsmap never started)"

    def wait_applied(self, sha: str) -> dict[str, Any]:
        return self.running.wait_applied(sha, timeout=WAIT_S)

    def metrics(self) -> str:
        return self.running.metrics()

    def metric(self, name: str, **labels: str) -> float:
        return counter(self.metrics(), name, **labels)

    def audit_pending(self) -> float | None:
        return sample_value(self.metrics(), "opsmap_audit_pending")

    # -- git ------------------------------------------------------------------------

    def pr(
        self,
        branch: str,
        files: Mapping[str, str | bytes | None],
        *,
        author: Person,
        merger: Person,
    ) -> str:
        """A one-commit PR by ``author`` merged ``--no-ff`` by ``merger``; the merge SHA."""
        return self.clone.pull_request(branch, files, author=author, merger=merger)[1]

    def request_pr(
        self,
        name: str,
        component_id: str,
        action: str,
        *,
        author: Person,
        merger: Person,
        extra: Mapping[str, str | bytes | None] | None = None,
        **request: Any,
    ) -> tuple[str, str]:
        """A PR adding ``requests/NAME.yaml`` (and ``extra`` files); (its path, the merge)."""
        path = f"requests/{name}.yaml"
        files = {path: request_yaml(component_id, action, **request), **(extra or {})}
        return path, self.pr(f"pr-{name}", files, author=author, merger=merger)

    def push(self) -> str:
        return self.clone.push()

    # -- the state database ----------------------------------------------------------

    def query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` in the state SQLite, opened read-only for this one query (or in
        the PostgreSQL database: ``?`` placeholders become ``%s``)."""
        if self.state_url is not None:
            with psycopg.connect(self.state_url, autocommit=True, connect_timeout=10) as conn:
                return conn.execute(sql.replace("?", "%s"), args).fetchall()  # type: ignore[arg-type]
        uri = f"{(self.state_dir / 'opsmap.sqlite3').resolve().as_uri()}?mode=ro"
        db = sqlite3.connect(uri, uri=True, timeout=10)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def journal(self, path: str) -> dict[str, Any] | None:
        """The journal's row for the request file ``path``; None if there is none."""
        rows = self.query(
            "SELECT path, commit_sha, requester, approver, state, rule FROM requests"
            " WHERE path = ?",
            path,
        )
        if not rows:
            return None
        keys = ("path", "commit", "requester", "approver", "state", "rule")
        return dict(zip(keys, rows[0], strict=True))

    def journal_paths(self) -> list[str]:
        return [row[0] for row in self.query("SELECT path FROM requests ORDER BY created_at")]

    def wait_request(
        self, path: str, states: Sequence[str] = FINISHED, *, timeout: float = WAIT_S
    ) -> dict[str, Any]:
        """Wait until the journal holds ``path`` in one of ``states``; its row."""

        def reached() -> dict[str, Any] | None:
            self.running  # noqa: B018 - fails at once if opsmap run died
            entry = self.journal(path)
            return entry if entry is not None and entry["state"] in states else None

        return wait_for(
            reached,
            what=f"request {path} in state {'/'.join(states)}\n{self.tail()}",
            timeout=timeout,
            interval=0.2,
            ignore=(OSError, sqlite3.Error, psycopg.OperationalError),
        )

    def status_request(self, path: str, *, timeout: float = WAIT_S) -> dict[str, Any]:
        """Wait until ``/api/v1/status`` lists ``path`` as finished; its entry there."""

        def shown() -> dict[str, Any] | None:
            entries = self.running.status()["requests"]
            found = [e for e in entries if e["path"] == path and e["state"] in FINISHED]
            return found[0] if found else None

        return wait_for(shown, what=f"request {path} in the status\n{self.tail()}", timeout=timeout)

    def outbox(self) -> list[dict[str, Any]]:
        """Every audit record of the outbox, delivered or not, in seq order."""
        rows = self.query("SELECT record FROM audit_records ORDER BY seq")
        return [json.loads(row[0]) for row in rows]

    def records(self, path: str) -> list[dict[str, Any]]:
        """The outbox's records about the request file ``path``, in seq order."""
        return [r for r in self.outbox() if r["target"].get("request") == path]

    # -- the git notes ---------------------------------------------------------------

    def audit_cli(self, *args: str, repo: Path | None = None) -> subprocess.CompletedProcess[str]:
        """``opsmap audit ARGS --repo REPO`` (the remote by default)."""
        where = repo if repo is not None else self.remote.path
        return subprocess.run(
            [sys.executable, "-m", "reconciler", "audit", *args, "--repo", str(where)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def notes(self, commit: str | None = None) -> list[dict[str, Any]] | None:
        """The records pushed to the remote (those of ``commit``); None if there are none."""
        args = ["--format", "json"] + (["--commit", commit] if commit else [])
        done = self.audit_cli(*args)
        if done.returncode != 0:
            return None
        records: list[dict[str, Any]] = json.loads(done.stdout)
        return records

    def wait_notes(self, commit: str, actions: Sequence[str]) -> list[dict[str, Any]]:
        """Wait until the remote's note of ``commit`` holds a record of every ``actions``."""

        def delivered() -> list[dict[str, Any]] | None:
            found = self.notes(commit)
            if found is None:
                return None
            return found if set(actions) <= {r["action"] for r in found} else None

        return wait_for(
            delivered,
            what=f"records {list(actions)} of {commit[:12]} pushed to the remote\n{self.tail()}",
            timeout=WAIT_S,
            interval=0.5,
        )


def one(records: Sequence[Mapping[str, Any]], action: str) -> dict[str, Any]:
    """The only record whose action is ``action``."""
    found = [dict(r) for r in records if r["action"] == action]
    assert len(found) == 1, f"expected one {action} record, got {len(found)}: {records}"
    return found[0]


def signing_git(clone: Clone, key: Path, *args: str, author: Person) -> str:
    """``git -c gpg.format=ssh -c user.signingkey=KEY ARGS`` in the clone, as ``author``."""
    return git(
        clone.path,
        "-c",
        "gpg.format=ssh",
        "-c",
        f"user.signingkey={key}",
        *args,
        author=author,
    )


def batch_files(
    world: World,
    actions: Sequence[Mapping[str, Any]],
    *,
    bindings: Sequence[Mapping[str, Any]] = (),
    signers: Sequence[Mapping[str, str]] = (),
    **settings: Any,
) -> dict[str, str | bytes | None]:
    """A map repo whose one component, ``batch`` on ``app-01``, has ``actions``; sre-team
    is admin, and ``bindings`` add to that."""
    return {
        **world.base_files(),
        "opsmap.yaml": settings_yaml(**settings),
        f"maps/{MAP}.yaml": map_yaml([component("batch", actions)]),
        "policies/trading.yaml": policy_yaml([SRE_ADMIN, *bindings], signers=signers),
    }


def appending(site: Site, name: str, word: str | None = None) -> dict[str, Any]:
    """An action ``name`` that appends one line (``word``, else ``name``) to ``NAME.log``."""
    return {"name": name, "command": f"echo {word or name} >>{site.dir}/{name}.log"}


WorldFactory = Callable[[str], World]
"""``make_world(name)``: a new world under the test's tmp_path (the fixture of conftest)."""
