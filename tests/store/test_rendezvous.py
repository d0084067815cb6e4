"""Rendezvous hashing of hosts over replicas (:mod:`reconciler.store.rendezvous`): every
host on exactly one live replica, the same answer whatever the order, and when a replica
joins or leaves, only the hosts it takes or gives move."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from reconciler.store.rendezvous import assign, mine, owner, weight

names = st.text(min_size=1, max_size=12)
hosts_st = st.lists(names, min_size=1, max_size=60, unique=True)
replicas_st = st.lists(names, min_size=1, max_size=8, unique=True)


@given(hosts_st, replicas_st, st.randoms())
def test_each_host_has_one_replica_whatever_the_order(
    hosts: list[str], replicas: list[str], rng: random.Random
) -> None:
    shuffled = list(replicas)
    rng.shuffle(shuffled)
    placed = assign(hosts, replicas)
    assert placed == assign(hosts, shuffled)
    assert set(placed) == set(hosts)
    assert set(placed.values()) <= set(replicas)
    shares = [mine(hosts, shuffled, r) for r in replicas]
    assert sorted(h for share in shares for h in share) == sorted(hosts)
    for replica, share in zip(replicas, shares, strict=True):
        assert share == [h for h in hosts if placed[h] == replica]


@given(hosts_st, replicas_st, names)
def test_a_replica_that_joins_takes_hosts_and_moves_no_other(
    hosts: list[str], replicas: list[str], new: str
) -> None:
    if new in replicas:
        return
    before = assign(hosts, replicas)
    after = assign(hosts, [*replicas, new])
    moved = {h for h in hosts if before[h] != after[h]}
    assert all(after[h] == new for h in moved)
    assert moved == {h for h in hosts if after[h] == new}


@given(hosts_st, replicas_st.filter(lambda r: len(r) >= 2), st.data())
def test_a_replica_that_leaves_gives_only_its_own_hosts(
    hosts: list[str], replicas: list[str], data: st.DataObject
) -> None:
    gone = data.draw(st.sampled_from(replicas))
    before = assign(hosts, replicas)
    after = assign(hosts, [r for r in replicas if r != gone])
    assert {h for h in hosts if before[h] != after[h]} == {h for h in hosts if before[h] == gone}
    assert gone not in after.values()


def test_no_replica_means_no_owner_and_a_replica_not_live_checks_nothing() -> None:
    assert owner("h", []) is None
    assert assign(["h"], []) == {}
    assert mine(["h"], ["a", "b"], "c") == []
    assert weight("ab", "c") != weight("a", "bc")


def test_a_fleet_is_shared_about_evenly() -> None:
    hosts = [f"app-{n:04d}.example.net" for n in range(1000)]
    for count in (2, 3, 5):
        replicas = [f"replica-{n}" for n in range(count)]
        shares = Counter(assign(hosts, replicas).values())
        fair = len(hosts) / count
        assert set(shares) == set(replicas)
        assert all(0.8 * fair <= share <= 1.2 * fair for share in shares.values()), shares
