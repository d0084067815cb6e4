"""Inventory: the hosts OpsMap reaches, their labels, and how to reach them.

An inventory file holds ``defaults:`` and ``hosts:``. :func:`resolve_hosts` merges every
file's defaults into its hosts and yields :class:`Host` values; :func:`select_hosts`
targets the hosts whose labels include all of a selector's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from agentless.result import HostName

HOST_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
ADDRESS_PATTERN = r"^[A-Za-z0-9._:%-]+$"
UNIX_USER_PATTERN = r"^[a-z_][a-z0-9_-]{0,31}\$?$"
LABEL_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]*$"
JUMP_HOST_PATTERN = r"^([a-z_][a-z0-9_-]*@)?[A-Za-z0-9._-]+(:[0-9]{1,5})?$"

Transport = Literal["ssh", "local"]
Labels = dict[Annotated[str, Field(pattern=LABEL_KEY_PATTERN)], str]

DEFAULT_SSH_PORT = 22
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_LOGIN_TIMEOUT_S = 10.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Reach(_Strict):
    """How to reach a host; every field may be set in ``defaults:`` or on the host."""

    port: int | None = Field(default=None, ge=1, le=65535)
    user: str | None = Field(default=None, pattern=UNIX_USER_PATTERN)
    transport: Transport | None = None
    identity_file: str | None = Field(
        default=None,
        min_length=1,
        description="Private key: a name in the operator's key directory (opsmap run "
        "--ssh-key-dir), or ~/.ssh/id_* (a default key); ssh-agent is used too",
    )
    known_hosts: str | None = Field(
        default=None,
        min_length=1,
        description="known_hosts file: a regular file of the map repo, by its path from "
        "the repo root (no absolute path, no '..', no symlink, at most 1 MiB); host keys "
        "are verified",
    )
    jump_host: str | None = Field(
        default=None,
        pattern=JUMP_HOST_PATTERN,
        description="[user@]host[:port] or the name of another inventory host",
    )
    connect_timeout_secs: float | None = Field(default=None, gt=0, le=300)
    login_timeout_secs: float | None = Field(default=None, gt=0, le=300)


class InventoryDefaults(_Reach):
    """Defaults for every host of the same inventory file."""


class HostEntry(_Reach):
    """One host as an inventory file spells it. A host without ``address`` uses its name."""

    name: str = Field(pattern=HOST_NAME_PATTERN, max_length=253)
    address: str | None = Field(default=None, pattern=ADDRESS_PATTERN, max_length=253)
    labels: Labels = Field(default_factory=dict)
    host_key: str | None = Field(
        default=None,
        pattern=r"^(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ [A-Za-z0-9+/=]+( .*)?$",
        description="Pinned public host key, as in known_hosts: 'ssh-ed25519 AAAA...'",
    )


class InventoryFile(_Strict):
    """The content of one ``inventory/*.yaml`` file."""

    defaults: InventoryDefaults = Field(default_factory=InventoryDefaults)
    hosts: list[HostEntry] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Host:
    """A host with every default applied: what a transport needs to reach it."""

    name: HostName
    address: str
    port: int = DEFAULT_SSH_PORT
    user: str | None = None
    transport: Transport = "ssh"
    labels: Mapping[str, str] = field(default_factory=dict)
    host_key: str | None = None
    identity_file: str | None = None
    known_hosts: str | None = None
    jump_host: str | None = None
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    login_timeout_s: float = DEFAULT_LOGIN_TIMEOUT_S

    def matches(self, selector: Mapping[str, str]) -> bool:
        """True when this host's labels include every label of ``selector``."""
        return all(self.labels.get(key) == value for key, value in selector.items())


T = TypeVar("T")


def _own_or_default(own: T | None, default: T | None) -> T | None:
    return own if own is not None else default


def resolve_host(entry: HostEntry, defaults: InventoryDefaults) -> Host:
    """``entry`` with ``defaults`` filled in where it says nothing."""
    port = _own_or_default(entry.port, defaults.port)
    connect = _own_or_default(entry.connect_timeout_secs, defaults.connect_timeout_secs)
    login = _own_or_default(entry.login_timeout_secs, defaults.login_timeout_secs)
    return Host(
        name=HostName(entry.name),
        address=entry.address or entry.name,
        port=port if port is not None else DEFAULT_SSH_PORT,
        user=_own_or_default(entry.user, defaults.user),
        transport=_own_or_default(entry.transport, defaults.transport) or "ssh",
        labels=dict(entry.labels),
        host_key=entry.host_key,
        identity_file=_own_or_default(entry.identity_file, defaults.identity_file),
        known_hosts=_own_or_default(entry.known_hosts, defaults.known_hosts),
        jump_host=_own_or_default(entry.jump_host, defaults.jump_host),
        connect_timeout_s=connect if connect is not None else DEFAULT_CONNECT_TIMEOUT_S,
        login_timeout_s=login if login is not None else DEFAULT_LOGIN_TIMEOUT_S,
    )


def resolve_hosts(files: Iterable[InventoryFile]) -> list[Host]:
    """Every host of every file, with its file's defaults applied, in file order."""
    return [resolve_host(entry, inv.defaults) for inv in files for entry in inv.hosts]


def select_hosts(hosts: Sequence[Host], selector: Mapping[str, str]) -> list[Host]:
    """The hosts whose labels include all of ``selector``'s (an empty selector selects none).

    One scan of ``hosts``: to select for many components, use :class:`HostIndex`.
    """
    if not selector:
        return []
    return [host for host in hosts if host.matches(selector)]


class HostIndex:
    """Hosts by label, so that each selector's hosts are found without scanning them all.

    A selector's hosts are the intersection of its labels' host sets, smallest first: the
    work is at most the smallest set's size per label of the selector, and each distinct
    selector is resolved once. :meth:`select` equals :func:`select_hosts` (hosts in order).
    """

    def __init__(self, hosts: Sequence[Host]) -> None:
        self.hosts = tuple(hosts)
        by_label: dict[tuple[str, str], set[int]] = {}
        for index, host in enumerate(self.hosts):
            for pair in host.labels.items():
                by_label.setdefault(pair, set()).add(index)
        self._by_label = by_label
        self._memo: dict[frozenset[tuple[str, str]], tuple[Host, ...]] = {}

    def select(self, selector: Mapping[str, str] | None) -> tuple[Host, ...]:
        if not selector:
            return ()
        key = frozenset(selector.items())
        found = self._memo.get(key)
        if found is None:
            sets = sorted((self._by_label.get(pair, set()) for pair in key), key=len)
            chosen = set(sets[0])
            for other in sets[1:]:
                if not chosen:
                    break
                chosen &= other
            found = self._memo[key] = tuple(self.hosts[i] for i in sorted(chosen))
        return found
