"""Helpers for the reconciler's end-to-end tests and its benchmark (no pytest needed).

- maps: YAML text of a map repo whose only host uses the ``local`` transport;
- processes: ``opsmap run``, ``git daemon`` and ``prometheus`` started in their own process
  groups, every group killed by :meth:`Processes.close`;
- HTTP: the reconciler's status, metrics and webhook over real sockets;
- :func:`wait_for`: a bounded poll loop (the machine is shared and slow: no test asserts a
  duration, each waits for a condition and fails with a clear message after a bound).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

T = TypeVar("T")

WAIT_S = 30.0
"""Default bound of every wait: a hang guard, not a performance assertion."""
HOST = "e2e-local"
"""The inventory's only host (``transport: local``): distinctive, so labels can be searched."""
MAP = "e2e"
HTTP_TIMEOUT_S = 10.0
SHA_RE = re.compile(r"[0-9a-f]{40}")


# -- waiting -------------------------------------------------------------------------------


class WaitTimeout(AssertionError):
    """A condition did not hold within its bound."""


def wait_for(
    predicate: Callable[[], T | None],
    *,
    what: str,
    timeout: float = WAIT_S,
    interval: float = 0.1,
    ignore: tuple[type[BaseException], ...] = (OSError,),
) -> T:
    """Call ``predicate`` until it returns something truthy (returned); raise after ``timeout``.

    Exceptions in ``ignore`` (connection refused while a server starts…) count as "not
    yet"; the last one is in the failure message.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
        except ignore as exc:
            value, last = None, exc
        else:
            last = value
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


# -- maps ----------------------------------------------------------------------------------


def inventory(host: str = HOST) -> str:
    return yaml.safe_dump(
        {"hosts": [{"name": host, "transport": "local", "labels": {"role": "e2e"}}]},
        sort_keys=False,
    )


def check(
    name: str,
    type_: str,
    config: Mapping[str, Any],
    *,
    interval: float = 1,
    timeout: float = 2,
    attempts: int = 1,
) -> dict[str, Any]:
    return {
        "name": name,
        "type": type_,
        "config": dict(config),
        "interval_secs": interval,
        "timeout_secs": timeout,
        "max_check_attempts": attempts,
    }


def tcp_check(name: str, port: int, **kw: Any) -> dict[str, Any]:
    return check(name, "tcp", {"port": port, "host": "127.0.0.1"}, **kw)


def command_check(name: str, command: str, **kw: Any) -> dict[str, Any]:
    return check(name, "command", {"command": command}, **kw)


def file_check(name: str, path: Path, **kw: Any) -> dict[str, Any]:
    """OK while ``path`` exists, CRITICAL (exit 2) when it does not."""
    return command_check(name, f"test -e '{path}' || exit 2", **kw)


def component(
    id_: str, checks: Sequence[Mapping[str, Any]], *, dependencies: Sequence[str] = ()
) -> dict[str, Any]:
    return {
        "id": id_,
        "name": f"Component {id_}",
        "type": "service",
        "dependencies": list(dependencies),
        "hosts": {"labels": {"role": "e2e"}},
        "checks": [dict(c) for c in checks],
    }


def map_text(components: Sequence[Mapping[str, Any]], *, name: str = MAP) -> str:
    return yaml.safe_dump(
        {
            "name": name,
            "version": "1",
            "description": "end-to-end test map",
            "components": [dict(c) for c in components],
        },
        sort_keys=False,
    )


def repo_files(
    components: Sequence[Mapping[str, Any]], *, name: str = MAP
) -> dict[str, str | bytes | None]:
    """The whole map repo: the inventory and one map."""
    return {"inventory/local.yaml": inventory(), f"maps/{name}.yaml": map_text(components)}


# -- processes -----------------------------------------------------------------------------


@dataclass
class Processes:
    """Processes started in their own process groups; :meth:`close` kills what is left."""

    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(
        self, argv: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as sink:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )
        self.started.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.started:
            stop_group(proc, signal.SIGTERM, timeout=10)
        self.started.clear()


def stop_group(
    proc: subprocess.Popen[bytes], signum: int = signal.SIGTERM, *, timeout: float = 30
) -> int:
    """Signal ``proc``'s process group, wait up to ``timeout``, then SIGKILL the group.

    Only a process not yet reaped is signalled (its pid cannot have been reused).
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Listener:
    """A TCP port the test opens and closes: what a ``tcp`` check observes."""

    port: int = 0
    sock: socket.socket | None = None

    def open(self) -> Listener:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(16)
        self.sock, self.port = sock, int(sock.getsockname()[1])
        return self

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


# -- the reconciler ------------------------------------------------------------------------


@dataclass
class Opsmap:
    """One ``opsmap run`` process and its HTTP endpoint."""

    proc: subprocess.Popen[bytes]
    log: Path
    host: str
    port: int
    first_status: dict[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    """Sent with every request of the helpers (behind a trusted proxy: a person's identity,
    without which the status is refused)."""

    # HTTP

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=HTTP_TIMEOUT_S)
        try:
            conn.request(method, path, body=body, headers={**self.headers, **(headers or {})})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def status(self) -> dict[str, Any]:
        code, body = self.request("GET", "/api/v1/status")
        assert code == 200, f"/api/v1/status answered {code}: {body[:300]!r}"
        data: dict[str, Any] = json.loads(body)
        return data

    def metrics(self) -> str:
        code, body = self.request("GET", "/metrics")
        assert code == 200, f"/metrics answered {code}"
        return body.decode()

    def healthz(self) -> int:
        return self.request("GET", "/healthz")[0]

    def hook(self, body: bytes, signature: str | None) -> int:
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        return self.request("POST", "/hooks/git", body=body, headers=headers)[0]

    # views

    def check_of(self, component_id: str, check_name: str, *, map_name: str = MAP) -> Any:
        return find_check(self.status(), component_id, check_name, map_name=map_name)

    def wait_applied(self, sha: str, *, timeout: float = WAIT_S) -> dict[str, Any]:
        return wait_for(
            lambda: (s := self.status())["last_applied_revision"] == sha and s,
            what=f"revision {sha} applied\n{self.tail()}",
            timeout=timeout,
        )

    def wait_check(
        self,
        component_id: str,
        check_name: str,
        hard_state: str,
        *,
        timeout: float = WAIT_S,
    ) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            found = self.check_of(component_id, check_name)
            return found if found and found["hard_state"] == hard_state else None

        return wait_for(
            reached,
            what=f"check {component_id}/{check_name} in hard state {hard_state}",
            timeout=timeout,
        )

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


def start_opsmap(
    processes: Processes,
    *,
    repo: str,
    state_dir: Path,
    log: Path,
    poll_interval: float = 1.0,
    secret: str | None = None,
    timeout: float = WAIT_S,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Opsmap:
    """Start ``opsmap run`` on a free loopback port; wait until ``/api/v1/status`` answers.

    That first status (asked for every 2 ms from the start; an answer other than 200 means
    "not ready yet") is kept in ``first_status``.

    The port is chosen here (another process may take it meanwhile: then it is tried again
    on another one). ``extra_args`` follow the usual ones; ``env`` is added to the
    environment; ``headers`` go with every request of :class:`Opsmap`'s helpers.
    """
    env = {k: v for k, v in os.environ.items() if k != "OPSMAP_WEBHOOK_SECRET"} | dict(env or {})
    if secret is not None:
        env["OPSMAP_WEBHOOK_SECRET"] = secret
    for _attempt in range(3):
        port = free_port()
        argv = [
            sys.executable, "-m", "reconciler", "run",
            "--repo", repo,
            "--listen", f"127.0.0.1:{port}",
            "--state-dir", str(state_dir),
            "--poll-interval", str(poll_interval),
            *extra_args,
        ]  # fmt: skip
        proc = processes.start(argv, log=log, env=env)
        service = Opsmap(proc, log, "127.0.0.1", port, headers=dict(headers or {}))

        def serving(service: Opsmap = service) -> bool:
            if service.proc.poll() is not None:
                return True
            code, body = service.request("GET", "/api/v1/status")
            if code != 200:  # not ready yet (503) is fine
                return False
            service.first_status = json.loads(body)
            return True

        wait_for(
            serving,
            what=f"opsmap run to serve HTTP on port {port}",
            timeout=timeout,
            interval=0.002,
        )
        if proc.poll() is None:
            return service
        if "cannot listen" not in service.stderr():
            break
    raise AssertionError(f"opsmap run exited with {proc.returncode}:\n{service.stderr()}")


# -- git daemon (a remote that is not on a watched path) -----------------------------------


def start_git_daemon(processes: Processes, base: Path, *, log: Path) -> str:
    """Serve the bare repos under ``base`` on ``git://127.0.0.1:PORT/``; the URL prefix.

    A ``git://`` remote is not local, so the reconciler does not watch it: only polls and
    webhooks make it fetch.
    """
    port = free_port()
    processes.start(
        [
            "git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1",
            f"--port={port}", f"--base-path={base}", str(base),
        ],
        log=log,
    )  # fmt: skip
    url = f"git://127.0.0.1:{port}/"

    def answers() -> bool:
        done = subprocess.run(
            ["git", "ls-remote", url + "remote.git"],
            capture_output=True,
            timeout=10,
            check=False,
        )
        return done.returncode == 0

    wait_for(answers, what=f"git daemon on port {port}")
    return url


# -- metrics and status --------------------------------------------------------------------


def samples(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def sample_value(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` whose labels include ``labels``; None if absent."""
    for s in samples(text):
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    return None


def counter(text: str, name: str, **labels: str) -> float:
    """A counter's value; an absent series counts as 0."""
    return sample_value(text, name, **labels) or 0.0


def find_check(
    status: Mapping[str, Any], component_id: str, check_name: str, *, map_name: str = MAP
) -> dict[str, Any] | None:
    for c in iter_components(status, map_name):
        if c["id"] == component_id:
            for k in c["checks"]:
                if k["name"] == check_name:
                    return dict(k)
    return None


def find_component(
    status: Mapping[str, Any], component_id: str, *, map_name: str = MAP
) -> dict[str, Any] | None:
    for c in iter_components(status, map_name):
        if c["id"] == component_id:
            return dict(c)
    return None


def iter_components(status: Mapping[str, Any], map_name: str = MAP) -> Iterator[dict[str, Any]]:
    for m in status.get("maps", []):
        if m["name"] == map_name:
            yield from m["components"]
