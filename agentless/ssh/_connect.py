"""Opening one SSH connection: host keys, identities, jump hosts, timeouts, errors.

Every asyncssh and ``OSError`` exception is translated here into
:class:`~agentless.errors.HostUnreachable` or :class:`~agentless.errors.HostKeyError`.

Host keys are always verified, never accepted blindly:

1. a pinned ``host_key`` on the host wins: only that key is trusted;
2. else the host's ``known_hosts`` file (relative to ``SshSettings.base_dir``), matched by
   address and port as OpenSSH does (``[addr]:port`` for ports other than 22);
3. else ``SshSettings.default_known_hosts`` (``~/.ssh/known_hosts``) if it exists;
4. else the host is refused with :class:`HostKeyError`. An unknown or changed key is a
   :class:`HostKeyError` too.

Files that inventory text names are read here, through :mod:`agentless.safefile`
(confined, no symlink, regular, size-capped, off the event loop), and handed to asyncssh
as data: asyncssh never opens a path the repo chose. A host's ``identity_file`` is read
only from the operator's key directory (:attr:`SshSettings.key_dir`), or without one only
as a default key name ``id_*`` in ``~/.ssh``; anything else makes the host unreachable,
with a reason that names the file and never shows its content.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from agentless.errors import HostKeyError, HostUnreachable
from agentless.inventory import Host
from agentless.safefile import (
    DEFAULT_KEY,
    DEFAULT_READ_TIMEOUT_S,
    MAX_KEY_BYTES,
    MAX_KNOWN_HOSTS_BYTES,
    UnsafeFile,
    default_key_name,
    read_confined_async,
    read_operator_file_async,
    relative_problem,
    shown_name,
)

log = logging.getLogger(__name__)

#: Cheap, hardware-accelerated AEAD first; asyncssh's defaults follow for old servers.
#: ("^" moves them to the head of asyncssh's default list, as in ssh_config.)
_ENCRYPTION_PREFERENCE = "^aes128-gcm@openssh.com,aes256-gcm@openssh.com"
_KEX_PREFERENCE = "^curve25519-sha256,curve25519-sha256@libssh.org"


KNOWN_HOSTS_CACHED = 8
"""Distinct known_hosts contents kept parsed (a revision's, the previous one's, pins…)."""


@dataclass(frozen=True, slots=True)
class SshSettings:
    """What every connection of an :class:`~agentless.ssh.transport.SshTransport` shares."""

    base_dir: Path = field(default_factory=Path.cwd)
    """Directory that ``known_hosts`` paths start from (the revision's files)."""
    key_dir: Path | None = None
    """The operator's key directory: the only place a host's ``identity_file`` may name.
    None: only the operator's default keys, ``id_*`` in :attr:`default_key_dir`."""
    default_key_dir: Path = field(default_factory=lambda: Path("~/.ssh").expanduser())
    client_keys: Sequence[str] = ()
    """Identity files (the operator's own) tried for every host, after ``identity_file``."""
    use_agent: bool = True
    """Offer the keys of the ssh-agent at ``$SSH_AUTH_SOCK`` too."""
    default_known_hosts: Path | None = field(
        default_factory=lambda: Path("~/.ssh/known_hosts").expanduser()
    )
    keepalive_interval_s: float = 60.0
    """Seconds of silence before a keepalive (a dead peer is given up after
    ``keepalive_count_max`` unanswered ones). asyncssh restarts the timer on every packet
    received, so a host checked more often than this never needs one; at 30 s, hosts
    checked every 30 s with jitter sent one for about every second round of checks (seen
    in ``benchmarks/fleet_bench.py``'s profile at 1,000 hosts)."""
    keepalive_count_max: int = 3
    file_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    """Bound of reading one known_hosts or key file (on a worker thread)."""


async def _known_hosts(host: Host, settings: SshSettings) -> object:
    """The ``known_hosts`` argument for asyncssh, as data: asyncssh never opens a path."""
    if host.host_key:
        try:
            key = asyncssh.import_public_key(host.host_key)
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise HostKeyError(host.name, "pinned host_key cannot be read") from exc
        return ([key], [], [])
    name = host.known_hosts or ""
    try:
        if host.known_hosts:
            data = await read_confined_async(
                settings.base_dir,
                host.known_hosts,
                max_bytes=MAX_KNOWN_HOSTS_BYTES,
                timeout_s=settings.file_timeout_s,
            )
        elif settings.default_known_hosts is not None:
            name = str(settings.default_known_hosts)
            data = await read_operator_file_async(
                settings.default_known_hosts,
                max_bytes=MAX_KNOWN_HOSTS_BYTES,
                timeout_s=settings.file_timeout_s,
            )
        else:
            raise HostKeyError(host.name, "no host_key pinned and no known_hosts file configured")
    except UnsafeFile as exc:
        raise HostKeyError(host.name, f"known_hosts {exc}") from exc
    try:
        return _parsed_known_hosts(data)
    except (asyncssh.Error, UnicodeDecodeError, ValueError) as exc:
        # the error would quote a line: only the file's name is told
        raise HostKeyError(
            host.name, f"known_hosts {shown_name(name)}: not a known_hosts file"
        ) from exc


@functools.lru_cache(maxsize=KNOWN_HOSTS_CACHED)
def _parsed_known_hosts(data: bytes) -> asyncssh.SSHKnownHosts:
    """A known_hosts file's content, parsed once: a fleet's hosts share one file, and
    parsing it decodes every key in it, so parsing it per connection would make opening N
    connections cost N² key decodings (asyncssh only reads the parsed object)."""
    return asyncssh.import_known_hosts(data.decode("utf-8"))


def key_dir_of(identity_file: str, settings: SshSettings) -> tuple[Path, str]:
    """Where ``identity_file`` may be read from, or :class:`UnsafeFile` saying why not.

    ``~/.ssh/id_*`` is one of the operator's default keys (in
    :attr:`SshSettings.default_key_dir`); any other name is relative to
    :attr:`SshSettings.key_dir` when the operator set one, else only a default key name
    (``id_*``) is allowed.
    """
    default = default_key_name(identity_file)
    if default is not None:
        return settings.default_key_dir, default
    problem = relative_problem(identity_file)
    if problem is not None:
        raise UnsafeFile(identity_file, f"{problem}; not in the operator's key directory")
    if settings.key_dir is not None:
        return settings.key_dir, identity_file
    if not DEFAULT_KEY.fullmatch(identity_file):
        raise UnsafeFile(
            identity_file,
            "is not a default key (~/.ssh/id_*) and no key directory is allowed"
            " (opsmap run --ssh-key-dir)",
        )
    return settings.default_key_dir, identity_file


async def _client_keys(host: Host, settings: SshSettings) -> list[object] | tuple[()]:
    """Keys for asyncssh: ``identity_file`` read here (as data), then the operator's."""
    keys: list[object] = []
    if host.identity_file:
        try:
            base, name = key_dir_of(host.identity_file, settings)
            data = await read_confined_async(
                base, name, max_bytes=MAX_KEY_BYTES, timeout_s=settings.file_timeout_s
            )
        except UnsafeFile as exc:
            raise HostUnreachable(host.name, f"identity_file {exc}") from exc
        try:
            keys.append(asyncssh.import_private_key(data))
        except (asyncssh.Error, ValueError) as exc:
            raise HostUnreachable(
                host.name,
                f"identity_file {shown_name(host.identity_file)}: not a private key"
                " (or protected by a passphrase)",
            ) from exc
    keys.extend(settings.client_keys)
    return keys or ()


async def _open_socket(host: Host) -> socket.socket:
    """A connected TCP socket (TCP_NODELAY) to ``host``; caller bounds it in time."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host.address, host.port, type=socket.SOCK_STREAM)
    last: OSError = OSError(f"no address for {host.address}")
    for family, type_, proto, _name, addr in infos:
        sock = socket.socket(family, type_, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, addr)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        except BaseException:
            sock.close()
            raise
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise last


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.PermissionDenied):
        return f"login failed: {exc.reason or 'permission denied'}"
    if isinstance(exc, asyncssh.DisconnectError):
        return f"disconnected: {exc.reason}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve address: {exc.strerror}"
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or type(exc).__name__
        return f"{exc.filename}: {reason}" if exc.filename else reason
    return str(exc) or type(exc).__name__


async def connect(
    host: Host,
    settings: SshSettings,
    *,
    tunnel: asyncssh.SSHClientConnection | None,
    client_factory: Callable[[], asyncssh.SSHClient],
) -> asyncssh.SSHClientConnection:
    """Open and authenticate one connection to ``host`` (through ``tunnel`` if given).

    ``connect_timeout_s`` bounds the TCP connect, ``login_timeout_s`` the SSH handshake,
    host key check and authentication that follow.
    """
    known_hosts = await _known_hosts(host, settings)
    client_keys = await _client_keys(host, settings)
    try:
        options = asyncssh.SSHClientConnectionOptions(
            config=[],
            username=host.user if host.user else (),
            known_hosts=known_hosts,
            client_keys=client_keys,
            agent_path=() if settings.use_agent else None,
            login_timeout=host.login_timeout_s,
            keepalive_interval=settings.keepalive_interval_s,
            keepalive_count_max=settings.keepalive_count_max,
            encryption_algs=_ENCRYPTION_PREFERENCE,
            kex_algs=_KEX_PREFERENCE,
            compression_algs=None,
        )
    except (asyncssh.Error, OSError, ValueError) as exc:
        # the operator's client_keys are read here: missing, unreadable or not keys
        raise HostUnreachable(host.name, f"cannot load SSH keys: {_reason(exc)}") from exc
    sock: socket.socket | None = None
    stage = "connect"
    try:
        if tunnel is None:
            async with asyncio.timeout(host.connect_timeout_s):
                sock = await _open_socket(host)
            stage = "login"
            async with asyncio.timeout(host.login_timeout_s):
                return await asyncssh.connect(
                    host.address,
                    host.port,
                    sock=sock,
                    options=options,
                    client_factory=client_factory,
                )
        async with asyncio.timeout(host.connect_timeout_s + host.login_timeout_s):
            return await asyncssh.connect(
                host.address,
                host.port,
                tunnel=tunnel,
                options=options,
                client_factory=client_factory,
            )
    except TimeoutError as exc:
        if sock is not None:
            sock.close()
        limit = host.connect_timeout_s if stage == "connect" else host.login_timeout_s
        raise HostUnreachable(host.name, f"{stage} timed out after {limit:g}s") from exc
    except asyncssh.HostKeyNotVerifiable as exc:
        raise HostKeyError(host.name, f"host key not verified: {exc.reason}") from exc
    except (asyncssh.Error, OSError, ValueError) as exc:
        if sock is not None:
            sock.close()
        raise HostUnreachable(host.name, _reason(exc)) from exc
