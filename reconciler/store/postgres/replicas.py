"""Replicas on one database: who is alive, who leads, and the term that fences the leader.

Each replica has a row in ``replicas`` whose ``heartbeat_at`` it renews; it is live while
that is younger than the lease period. The leader holds ``leader_lease``: a row with a
term, a holder and an expiry (the database's clock: replicas' clocks may differ). Each
:meth:`Replicas.heartbeat`, in one transaction: renews this replica's row; renews the
lease if it holds it and it has not expired, or takes it (term + 1) if it has expired or
was given back; and reads the live replicas. The result, a :class:`Standing`, answers the
loop's two questions: "am I leader, and in which term" (:meth:`Replicas.leader_term`) and
"which hosts are mine" (:meth:`Standing.mine`, rendezvous hashing over the live replicas).

Every journal, audit and cursor write of a replica is fenced (:meth:`Replicas.fence`,
in the write's transaction, holding the lease row ``FOR SHARE``): the lease must be this
replica's, in this replica's term, and not expired. A replica that lost the lease (missed
heartbeats, a partition) cannot write once a new leader took over, nor once its lease
expired; a write either commits before a takeover's transaction or sees the new term. A
replica also stops calling itself leader on its own clock, one lease period after the
start of its last successful heartbeat, before the database would give the lease away.

Heartbeats block on the database: call them from a thread, every third of the lease
period or so. :meth:`Replicas.leave` (on a clean stop) gives the lease back and removes
the replica's row, so that another takes over at its next heartbeat.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.store import rendezvous
from reconciler.store.postgres.db import Cursor, Database, Fenced
from reconciler.store.writes import StateWriteError

LEASE_S = 15.0
"""The default lease period: a dead leader's requests wait up to this long for another."""
FORGET_AFTER_PERIODS = 20
"""A replica silent for this many lease periods is removed from ``replicas``."""

_TAKE_OR_RENEW = """
UPDATE leader_lease SET
    term = CASE WHEN holder = %(me)s AND expires_at > now() THEN term ELSE term + 1 END,
    holder = %(me)s,
    expires_at = now() + make_interval(secs => %(lease)s)
WHERE id = 1 AND (holder = %(me)s OR holder = '' OR expires_at <= now())
RETURNING term, extract(epoch FROM expires_at - now())
"""


@dataclass(frozen=True, slots=True)
class Standing:
    """What one heartbeat found."""

    replica: str
    """This replica's id."""
    leader: bool
    term: int
    """The lease's term (this replica's when it leads)."""
    leader_id: str | None
    """The replica holding a lease that has not expired; None if none does."""
    lease_left_s: float
    """Seconds until the lease expires, by the database's clock (0 if it has)."""
    live: tuple[str, ...]
    """The live replicas' ids, sorted (this one included)."""

    def mine(self, hosts: Iterable[str]) -> list[str]:
        """The hosts this replica checks (rendezvous hashing over the live replicas)."""
        return rendezvous.mine(hosts, self.live, self.replica)


class Replicas:
    """This replica's membership and lease, on the store's :class:`Database`; ``owner_term``
    is ``owner.term`` when it started (see :mod:`reconciler.store.postgres.owner`)."""

    def __init__(
        self,
        db: Database,
        *,
        owner_term: int,
        name: str | None = None,
        lease_s: float = LEASE_S,
        replica_id: str | None = None,
    ) -> None:
        if not 1.0 <= lease_s <= 3600.0:
            raise ValueError("the lease period must be between 1 and 3600 seconds")
        self.id = replica_id or uuid.uuid4().hex
        self.name = name or socket.gethostname()
        self.lease_s = lease_s
        self._db = db
        self._owner_term = owner_term
        self._lock = threading.Lock()
        self._term: int | None = None
        self._leader_until = 0.0
        self.standing: Standing | None = None
        """What the last successful heartbeat found."""

    def heartbeat(self) -> Standing:
        """Renew this replica's row and the lease, or take the lease (see the module's
        docstring). StateWriteError (``lease``) if the database fails: this replica is
        then no leader, on its own clock, once its lease period has passed."""
        started = time.monotonic()
        with self._db.write("lease", fenced=False) as cur:
            cur.execute(
                "INSERT INTO replicas (id, name, started_at, heartbeat_at)"
                " VALUES (%s, %s, now(), now())"
                " ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()",
                (self.id, self.name),
            )
            row = cur.execute(_TAKE_OR_RENEW, {"me": self.id, "lease": self.lease_s}).fetchone()
            leader = row is not None
            leader_id: str | None
            if row is not None:
                term, left, leader_id = int(row[0]), float(row[1]), self.id
            else:
                term, left, leader_id = self._lease(cur)
            live = cur.execute(
                "SELECT id FROM replicas WHERE heartbeat_at > now() - make_interval(secs => %s)"
                " ORDER BY id",
                (self.lease_s,),
            ).fetchall()
            cur.execute(
                "DELETE FROM replicas WHERE heartbeat_at < now() - make_interval(secs => %s)",
                (self.lease_s * FORGET_AFTER_PERIODS,),
            )
        standing = Standing(self.id, leader, term, leader_id, max(0.0, left),
                            tuple(str(r[0]) for r in live))  # fmt: skip
        with self._lock:
            self._term = term if leader else None
            self._leader_until = started + min(left, self.lease_s) if leader else 0.0
            self.standing = standing
        return standing

    def leader_term(self) -> int | None:
        """This replica's term while it leads, on its own clock; None when it does not."""
        with self._lock:
            if self._term is None or time.monotonic() >= self._leader_until:
                return None
            return self._term

    def fence(self, cur: Cursor) -> None:
        """In a write's transaction: :class:`Fenced` unless this replica leads, in its
        term, with a lease that has not expired, and the database is still held by
        replicas since it started (the ``owner`` and lease rows held ``FOR SHARE``)."""
        term = self.leader_term()
        row = cur.execute(
            "SELECT o.term, l.term, l.holder, l.expires_at > clock_timestamp()"
            " FROM owner o, leader_lease l WHERE o.id = 1 AND l.id = 1 FOR SHARE"
        ).fetchone()
        if row is None or int(row[0]) != self._owner_term:
            raise Fenced("another OpsMap holds the state database now: this replica writes no more")
        if term is None or (int(row[1]), str(row[2]), bool(row[3])) != (term, self.id, True):
            raise Fenced(
                f"this replica does not lead (the lease is in term {row[1]}; "
                f"this replica's: {term}): it writes no request or audit record"
            )

    def leave(self) -> None:
        """Give the lease back if held and remove this replica's row (a clean stop)."""
        with self._lock:
            term, self._term, self._leader_until = self._term, None, 0.0
        # if the database fails, the lease expires and the row ages out by themselves
        with contextlib.suppress(StateWriteError), self._db.write("lease", fenced=False) as cur:
            if term is not None:
                cur.execute(
                    "UPDATE leader_lease SET holder = '', expires_at = now()"
                    " WHERE id = 1 AND holder = %s AND term = %s",
                    (self.id, term),
                )
            cur.execute("DELETE FROM replicas WHERE id = %s", (self.id,))

    @staticmethod
    def _lease(cur: Cursor) -> tuple[int, float, str | None]:
        row = cur.execute(
            "SELECT term, extract(epoch FROM expires_at - now()), holder FROM leader_lease"
            " WHERE id = 1"
        ).fetchone()
        if row is None:
            raise Fenced("the state database has no leader_lease row")
        left = float(row[1]) if row[1] is not None else 0.0
        holder = str(row[2]) if row[2] and left > 0 else None
        return int(row[0]), left, holder
