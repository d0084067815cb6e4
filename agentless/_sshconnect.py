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
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from agentless.errors import HostKeyError, HostUnreachable
from agentless.inventory import Host

log = logging.getLogger(__name__)

#: Cheap, hardware-accelerated AEAD first; asyncssh's defaults follow for old servers.
#: ("^" moves them to the head of asyncssh's default list, as in ssh_config.)
_ENCRYPTION_PREFERENCE = "^aes128-gcm@openssh.com,aes256-gcm@openssh.com"
_KEX_PREFERENCE = "^curve25519-sha256,curve25519-sha256@libssh.org"


@dataclass(frozen=True, slots=True)
class SshSettings:
    """What every connection of an :class:`~agentless.ssh.SshTransport` shares."""

    base_dir: Path = field(default_factory=Path.cwd)
    """Directory that relative ``known_hosts`` and ``identity_file`` paths start from."""
    client_keys: Sequence[str] = ()
    """Identity files tried for every host, after the host's own ``identity_file``."""
    use_agent: bool = True
    """Offer the keys of the ssh-agent at ``$SSH_AUTH_SOCK`` too."""
    default_known_hosts: Path | None = field(
        default_factory=lambda: Path("~/.ssh/known_hosts").expanduser()
    )
    keepalive_interval_s: float = 30.0
    keepalive_count_max: int = 3


def _known_hosts(host: Host, settings: SshSettings) -> object:
    """The ``known_hosts`` argument for asyncssh: never ``None``."""
    if host.host_key:
        try:
            key = asyncssh.import_public_key(host.host_key)
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise HostKeyError(host.name, f"pinned host_key cannot be read: {exc}") from exc
        return ([key], [], [])
    if host.known_hosts:
        path = Path(host.known_hosts).expanduser()
        path = path if path.is_absolute() else settings.base_dir / path
    elif settings.default_known_hosts is not None:
        path = settings.default_known_hosts
    else:
        raise HostKeyError(host.name, "no host_key pinned and no known_hosts file configured")
    if not path.is_file():
        raise HostKeyError(host.name, f"known_hosts file {path} does not exist")
    return str(path)


def _client_keys(host: Host, settings: SshSettings) -> Sequence[str] | tuple[()]:
    keys: list[str] = []
    if host.identity_file:
        path = Path(host.identity_file).expanduser()
        keys.append(str(path if path.is_absolute() else settings.base_dir / path))
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
    known_hosts = _known_hosts(host, settings)
    try:
        options = asyncssh.SSHClientConnectionOptions(
            config=[],
            username=host.user if host.user else (),
            known_hosts=known_hosts,
            client_keys=_client_keys(host, settings),
            agent_path=() if settings.use_agent else None,
            login_timeout=host.login_timeout_s,
            keepalive_interval=settings.keepalive_interval_s,
            keepalive_count_max=settings.keepalive_count_max,
            encryption_algs=_ENCRYPTION_PREFERENCE,
            kex_algs=_KEX_PREFERENCE,
            compression_algs=None,
        )
    except (asyncssh.Error, OSError, ValueError) as exc:
        # identity or known_hosts files are read here: missing, unreadable or not keys
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
