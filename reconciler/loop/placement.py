"""Which hosts a replica checks: rendezvous hashing over the live replicas.

One process checks every host and has no :class:`Placement`. Replicas on one PostgreSQL
database (``opsmap run --replica NAME``) each hold the placement their last heartbeat
found (:class:`reconciler.store.postgres.replicas.Standing`): a host is checked by the
live replica that :func:`reconciler.store.rendezvous.owner` names, so every replica
computes the same split with no coordination, and a replica that joins or leaves moves
only about 1/n of the hosts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.store import rendezvous


@dataclass(frozen=True)
class Placement:
    """This replica (``me``) among the ``live`` replicas (ids, sorted), and who leads."""

    me: str
    live: tuple[str, ...]
    leader: str | None = None
    _owners: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)

    def owner(self, host: str) -> str | None:
        """The replica that checks ``host`` (None when no replica is live)."""
        if host not in self._owners:  # one hash per host and replica, then remembered
            self._owners[host] = rendezvous.owner(host, self.live)
        return self._owners[host]

    def checks(self, host: str) -> bool:
        """Whether this replica checks ``host``."""
        return self.owner(host) == self.me
