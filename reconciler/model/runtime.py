"""How ``opsmap run`` itself runs: the limits and intervals of the service, grouped.

These are the operator's, not the repo's (``opsmap.yaml`` is
:class:`reconciler.model.settings.Settings`): a pull request cannot change them. Like
kopf's ``OperatorSettings``, one frozen object, passed to the service and from there to
each part, in groups named after the part they tune; the defaults are the values that
were module constants before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agentless.output import DEFAULT_MAX_OUTPUT


@dataclass(frozen=True, slots=True)
class GitSettings:
    timeout_s: float = 60.0
    """Every git command (and every read of the blob reader) ends within this, or fails."""


@dataclass(frozen=True, slots=True)
class SshLimits:
    """The bounds of the SSH transport (see :class:`agentless.ssh.SshTransport`)."""

    per_host_limit: int = 4
    """Commands at once on one host (1 to 9: sshd's default ``MaxSessions`` is 10)."""
    max_inflight: int = 256
    """Commands at once over every host."""
    max_connecting: int = 32
    """Connections being opened at once."""
    max_output: int = DEFAULT_MAX_OUTPUT
    """Bytes kept of each stream (stdout, stderr) of one command, over SSH and locally;
    the rest is counted and dropped as it arrives (``opsmap run --max-output``)."""


@dataclass(frozen=True, slots=True)
class PersistenceSettings:
    interval_s: float = 10.0
    """How often check states are saved to the state database (and on a clean stop)."""
    timeout_s: float = 60.0
    """Past this, a save that still runs is logged as slow (it goes on)."""


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    interval_s: float = 5.0
    """How often audit records are pushed as git notes (or at once when one is added)."""
    retry_max_s: float = 300.0
    """The longest wait between two attempts while the remote refuses them (doubling)."""


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    """Every group of the service's settings."""

    git: GitSettings = field(default_factory=GitSettings)
    ssh: SshLimits = field(default_factory=SshLimits)
    persistence: PersistenceSettings = field(default_factory=PersistenceSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
