"""Real OpenSSH servers on loopback ports, for tests and benchmarks (no pytest needed).

A :class:`Fleet` owns a temp directory with a client key, an ``authorized_keys`` file and a
``known_hosts`` file listing every server it started. Servers run ``/usr/sbin/sshd -D -e``
as the current user (root in CI) and let the test user log in: ``opsmap-test`` with
``/bin/sh`` and an empty home when running as root (created with ``useradd`` if missing),
else the current user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from agentless.inventory import Host
from agentless.result import HostName

SSHD = "/usr/sbin/sshd"
TEST_USER = "opsmap-test"
_START_TIMEOUT_S = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 with nothing listening (free when this returns)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_test_user(workdir: Path) -> str:
    """The login user for the servers: ``opsmap-test`` when root, else the current user."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        skel = workdir / "empty-skel"
        skel.mkdir(exist_ok=True)
        subprocess.run(
            ["useradd", "--create-home", "--skel", str(skel), "--shell", "/bin/sh", TEST_USER],
            check=True,
        )
    # '*' (not the '!' useradd sets) so that sshd without PAM accepts key logins.
    subprocess.run(["usermod", "--password", "*", TEST_USER], check=True)
    sudoers = Path("/etc/sudoers.d")
    if sudoers.is_dir():
        # run_as_user tests: the test user may run commands as itself through sudo -n, only.
        rule = sudoers / "opsmap-test"
        rule.write_text(f"{TEST_USER} ALL=({TEST_USER}) NOPASSWD: ALL\n")
        rule.chmod(0o440)
    return TEST_USER


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (sshd's per-connection monitor and session processes)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found.extend(children)
        frontier = children
    return found


@dataclass
class Sshd:
    """One sshd: its port, its host key file, its process."""

    name: str
    port: int
    config: Path
    host_key: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Fleet:
    """Starts and stops sshd servers that share one client key and one known_hosts file."""

    workdir: Path
    user: str = ""
    servers: list[Sshd] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        self.user = self.user or ensure_test_user(self.workdir)
        self.client_key = self.workdir / "client_key"
        key = asyncssh.generate_private_key("ssh-ed25519")
        key.write_private_key(str(self.client_key))
        self.client_key.chmod(0o600)
        self.authorized_keys = self.workdir / "authorized_keys"
        key.write_public_key(str(self.authorized_keys))
        self.authorized_keys.chmod(0o644)
        self.known_hosts = self.workdir / "known_hosts"
        self.known_hosts.write_text("")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)

    # -- servers ----------------------------------------------------------------------

    def start(self, count: int = 1) -> list[Sshd]:
        """Start ``count`` new servers, wait until they listen, add them to known_hosts."""
        new = [self._prepare(f"sshd{len(self.servers) + i}") for i in range(count)]
        self.servers.extend(new)
        for server in new:
            self._spawn(server)
        for server in new:
            wait_listening(server.port, server)
        self.write_known_hosts()
        return new

    def _prepare(self, name: str) -> Sshd:
        port = free_port()
        sdir = self.workdir / name
        sdir.mkdir(exist_ok=True)
        server = Sshd(name, port, sdir / "sshd_config", sdir / "host_key", sdir / "sshd.log")
        self._new_host_key(server)
        server.config.write_text(
            "\n".join(
                [
                    f"Port {port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {server.host_key}",
                    f"PidFile {sdir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.authorized_keys}",
                    f"AllowUsers {self.user}",
                    "UsePAM no",
                    "StrictModes no",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitUserRC no",
                    "PrintMotd no",
                    "PrintLastLog no",
                    "UseDNS no",
                    "MaxStartups 200",
                    "LogLevel INFO",
                    "",
                ]
            )
        )
        return server

    def _new_host_key(self, server: Sshd) -> None:
        key = asyncssh.generate_private_key("ssh-ed25519")
        key.write_private_key(str(server.host_key))
        server.host_key.chmod(0o600)

    def _spawn(self, server: Sshd) -> None:
        with server.log.open("ab") as log:
            server.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(server.config)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def stop(self, server: Sshd) -> None:
        """Stop the listener and every session it serves (clients see the drop)."""
        if server.proc is None:
            return
        sessions = _descendants(server.proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.proc.pid, signal.SIGTERM)
        server.proc.wait(timeout=_START_TIMEOUT_S)
        for pid in sessions:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        server.proc = None

    def cut_connections(self, server: Sshd) -> int:
        """SIGKILL the sshd processes serving ``server``'s connections (not the listener,
        not the commands they started): every client sees its connection drop, the way a
        crashed or OOM-killed sshd or a cut link looks, while a command that was running
        goes on (reparented, with no one to read its output). How many were killed."""
        return self.signal_sessions(server, signal.SIGKILL)

    def signal_sessions(self, server: Sshd, signum: signal.Signals) -> int:
        """Send ``signum`` to the sshd processes serving ``server``'s connections only
        (SIGSTOP: a server that stops answering, SIGCONT: it answers again). How many."""
        if server.proc is None:
            return 0
        sent = 0
        for pid in _descendants(server.proc.pid):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip().startswith("sshd"):
                    os.kill(pid, signum)
                    sent += 1
        return sent

    def restart(self, server: Sshd, *, new_host_key: bool = False) -> None:
        """Stop ``server`` and start it again on the same port; known_hosts is NOT updated."""
        self.stop(server)
        if new_host_key:
            self._new_host_key(server)
        self._spawn(server)
        wait_listening(server.port, server)

    def close(self) -> None:
        for server in self.servers:
            self.stop(server)

    # -- client side ------------------------------------------------------------------

    def write_known_hosts(self) -> None:
        lines = []
        for server in self.servers:
            public = asyncssh.read_private_key(str(server.host_key)).export_public_key()
            lines.append(f"[127.0.0.1]:{server.port} {public.decode().strip()}\n")
        self.known_hosts.write_text("".join(lines))

    def public_host_key(self, server: Sshd) -> str:
        return asyncssh.read_private_key(str(server.host_key)).export_public_key().decode().strip()

    def host(self, server: Sshd, **overrides: object) -> Host:
        """An inventory :class:`Host` for ``server`` (known_hosts relative to ``workdir``)."""
        fields: dict[str, object] = {
            "name": HostName(server.name),
            "address": "127.0.0.1",
            "port": server.port,
            "user": self.user,
            "known_hosts": "known_hosts",
            "connect_timeout_s": 5.0,
            "login_timeout_s": 10.0,
        }
        fields.update(overrides)
        return Host(**fields)  # type: ignore[arg-type]


def wait_listening(port: int, server: Sshd | None = None) -> None:
    """Return once something accepts TCP connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if server is not None and server.proc is not None and server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited: {server.log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on port {port} after {_START_TIMEOUT_S}s")
        time.sleep(0.01)
