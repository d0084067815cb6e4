"""A throwaway PostgreSQL cluster for tests: Debian's ``postgresql`` (15), no service.

:class:`Cluster` makes a cluster with ``initdb`` in a temp directory, starts ``postgres``
on a unix socket in that directory and on a free loopback port, and stops it at the end.
``initdb`` and ``postgres`` refuse to run as root, so as root both run as ``nobody``
(``runuser``) in a directory owned by ``nobody``; otherwise as the current user.

The cluster's superuser is ``opsmap``. Over the socket it needs no password (``trust``);
over TCP it needs :data:`PASSWORD` (``scram-sha-256``), so that tests can check that a
URL's password is never shown. :meth:`Cluster.database` creates a fresh database.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psycopg
from sshd import free_port

BIN = Path("/usr/lib/postgresql/15/bin")
USER = "opsmap"
PASSWORD = "s3cret-Pg-pass"
"""The superuser's password over TCP (a test greps logs and process lists for it)."""
RUN_AS = "nobody"
START_WAIT_S = 60.0


def available() -> bool:
    return (BIN / "initdb").exists() and (BIN / "postgres").exists()


@dataclass
class Cluster:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="opsmap-pg-")))
    port: int = field(default_factory=free_port)
    fsync: bool = False
    """Off for tests (a throwaway cluster: speed); on for a benchmark of durable commits."""
    _databases: int = 0

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root

    def init(self) -> None:
        """``initdb`` (as an unprivileged user when root) and a first start."""
        self.root.chmod(0o755)
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        self._own(self.root)
        self._own(pwfile)
        self._run(
            str(BIN / "initdb"),
            "--pgdata", str(self.data),
            "--username", USER,
            "--pwfile", str(pwfile),
            "--auth-local", "trust",
            "--auth-host", "scram-sha-256",
            "--encoding", "UTF8",
            "--locale", "C.UTF-8",
            "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        self.start()

    def start(self) -> None:
        self._run(
            str(BIN / "pg_ctl"),
            "--pgdata", str(self.data),
            "--log", str(self.root / "postgres.log"),
            "--options",
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.socket_dir} -c max_connections=200 "
            + ("" if self.fsync else "-c fsync=off -c full_page_writes=off"),
            "--wait", "--timeout", str(int(START_WAIT_S)),
            "start",
        )  # fmt: skip

    def stop(self) -> None:
        """Stop it (fast: sessions are ended, as in a database restart)."""
        if (self.data / "postmaster.pid").exists():
            self._run(str(BIN / "pg_ctl"), "--pgdata", str(self.data), "--mode", "fast",
                      "--wait", "stop")  # fmt: skip

    def pids(self) -> list[int]:
        """The postmaster and every process it started (backends, checkpointer, WAL
        writer…): stopping the postmaster alone leaves its backends answering."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        found = [postmaster]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # gone meanwhile
            if int(fields[1]) == postmaster:  # the parent's pid, after state
                found.append(int(stat.parent.name))
        return found

    @contextmanager
    def paused(self) -> Iterator[list[int]]:
        """The whole cluster stopped (SIGSTOP to each of its processes: a database that
        hangs, its sockets open and its kernel acknowledging), then continued (SIGCONT)."""
        pids = self.pids()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield pids
        finally:
            for pid in pids:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", *, tcp: bool = False) -> str:
        """A URL for ``database``: the socket without a password, or TCP with one."""
        if tcp:
            return f"postgresql://{USER}:{quote(PASSWORD)}@127.0.0.1:{self.port}/{database}"
        socket = quote(str(self.socket_dir), safe="")
        return f"postgresql://{USER}@/{database}?host={socket}&port={self.port}"

    def database(self, prefix: str = "t") -> str:
        """A new, empty database; its name."""
        self._databases += 1
        name = f"{prefix}_{os.getpid()}_{self._databases}"
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def _own(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(RUN_AS)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", RUN_AS, "--"] if os.geteuid() == 0 else []
        result = subprocess.run(
            [*prefix, *command],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=START_WAIT_S + 30,
            check=False,
        )
        if result.returncode != 0:
            log = self.root / "postgres.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{' '.join(command[:2])} failed ({result.returncode}): "
                f"{result.stdout[-1000:]}{result.stderr[-2000:]}\n{tail}"
            )
