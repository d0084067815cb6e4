"""Which replica checks which host: rendezvous (highest random weight) hashing.

Each (replica, host) pair gets a weight from a hash of both; a host goes to the live
replica with the highest weight. Every replica computes the same answer from the same set
of live replicas, with no coordination; a replica that joins takes only the hosts it now
weighs highest on (about 1/n of them), and one that leaves gives only its own hosts away,
each to the replica it weighs next highest on. Pure functions, no database: the loop asks
:func:`owner` or :func:`mine` with the live replicas of
:class:`reconciler.store.postgres.replicas.Standing`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence


def weight(replica: str, host: str) -> int:
    """The pair's weight: 64 bits of BLAKE2b of both names (a separator between them, so
    that ``("ab", "c")`` and ``("a", "bc")`` differ)."""
    digest = hashlib.blake2b(
        replica.encode("utf-8", "surrogatepass") + b"\0" + host.encode("utf-8", "surrogatepass"),
        digest_size=8,
        person=b"opsmap-hosts",
    )
    return int.from_bytes(digest.digest(), "big")


def owner(host: str, replicas: Iterable[str]) -> str | None:
    """The replica that checks ``host`` among ``replicas`` (None if there is none); ties,
    however unlikely, go to the greatest name, so the answer never depends on order."""
    members = list(replicas)
    return _owner(host, members) if members else None


def _owner(host: str, members: Sequence[str]) -> str:
    return max((weight(replica, host), replica) for replica in members)[1]


def assign(hosts: Iterable[str], replicas: Iterable[str]) -> Mapping[str, str]:
    """Every host's replica (empty if there are no replicas)."""
    members = sorted(set(replicas))
    if not members:
        return {}
    return {host: _owner(host, members) for host in hosts}


def mine(hosts: Iterable[str], replicas: Iterable[str], me: str) -> list[str]:
    """The hosts among ``hosts`` that ``me`` checks, in their order; none if ``me`` is not
    among ``replicas`` (a replica that is not live checks nothing)."""
    members = sorted(set(replicas))
    if me not in members:
        return []
    return [host for host in hosts if _owner(host, members) == me]
