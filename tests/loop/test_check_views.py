"""The views kept from one snapshot to the next (:class:`~reconciler.loop.view.CheckViews`):
a snapshot built with them is the one built from nothing, whatever changed in between.

The reference is :func:`~reconciler.loop.view.build_snapshot` without kept views (every
view built anew); the repo is a real one, loaded from files as the reconciler loads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from e2e_support import command_check, component, repo_files

from agentless.result import CheckOutcome, CheckState
from reconciler.loop.checkstate import CheckStatus
from reconciler.loop.scheduler import CheckKey, ScheduledCheck
from reconciler.loop.targets import scheduled_checks
from reconciler.loop.view import CheckViews, Revisions, Snapshot, build_snapshot
from reconciler.repo.loader import MapRepo, load_repo, read_tree

OFFSET = 1_796_000_000.0


def repo_of(root: Path, checks: list[dict[str, Any]]) -> MapRepo:
    for path, text in repo_files([component("a", checks)]).items():
        assert isinstance(text, str)
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    repo = load_repo(read_tree(root))
    assert not repo.findings, repo.findings
    return repo


class Loop:
    """What the reconciler keeps: the repo, its checks, their statuses, the kept views."""

    def __init__(self, repo: MapRepo) -> None:
        self.views = CheckViews(OFFSET)
        self.statuses: dict[CheckKey, CheckStatus] = {}
        self.apply(repo)

    def apply(self, repo: MapRepo) -> None:
        self.repo, self.scheduled = repo, scheduled_checks(repo)
        keep = {c.key for c in self.scheduled}
        self.statuses = {k: v for k, v in self.statuses.items() if k in keep}
        self.views.applied(self.scheduled)

    def result(self, check: ScheduledCheck, state: CheckState, at: float) -> None:
        """A result, as a map worker records it and the reconciler's hook takes it."""
        status = self.statuses.setdefault(check.key, CheckStatus())
        status.record(CheckOutcome(state, f"{state.name} at {at}"), at=at, duration_s=0.1,
                      policy=check.policy)  # fmt: skip
        self.views.update(check, status)

    def snapshot(self, *, kept: bool = True) -> Snapshot:
        return build_snapshot(
            revisions=Revisions(),
            repo=self.repo,
            scheduled=self.scheduled,
            statuses=self.statuses,
            wall_offset=OFFSET,
            views=self.views if kept else None,
        )

    def same_as_fresh(self) -> Snapshot:
        kept = self.snapshot()
        assert kept == self.snapshot(kept=False)
        return kept


def checks_of(snap: Snapshot) -> dict[str, dict[str, Any]]:
    return {c.name: c.to_json() for m in snap.maps for comp in m.components for c in comp.checks}


def test_each_snapshot_is_the_fresh_one_while_results_come(tmp_path: Path) -> None:
    probes = [command_check("p", "true", attempts=3), command_check("q", "true")]
    loop = Loop(repo_of(tmp_path, probes))
    assert checks_of(loop.same_as_fresh())["p"]["state"] == "PENDING"
    p, q = loop.scheduled
    steps = [(CheckState.OK, "hard", 1), (CheckState.CRITICAL, "soft", 1),
             (CheckState.CRITICAL, "soft", 2), (CheckState.CRITICAL, "hard", 3)]  # fmt: skip
    for at, (state, state_type, attempt) in enumerate(steps):
        loop.result(p, state, 100.0 + at)
        shown = checks_of(loop.same_as_fresh())
        assert (shown["p"]["state"], shown["p"]["state_type"]) == (state.name, state_type)
        assert shown["p"]["attempt"] == attempt
        assert shown["q"]["state"] == "PENDING"
    assert shown["p"]["hard_state"] == "CRITICAL"
    loop.result(q, CheckState.WARNING, 200.0)
    assert checks_of(loop.same_as_fresh())["q"]["state"] == "WARNING"


def test_a_status_replaced_by_another_shows_without_an_update(tmp_path: Path) -> None:
    """A restored or observed status is a new object: seen as such, with no hook called."""
    loop = Loop(repo_of(tmp_path, [command_check("p", "true")]))
    (p,) = loop.scheduled
    loop.result(p, CheckState.OK, 10.0)
    loop.same_as_fresh()
    other = CheckStatus()
    other.record(CheckOutcome(CheckState.UNKNOWN, "from another replica"), at=20.0,
                 duration_s=0.2, policy=p.policy)  # fmt: skip
    loop.statuses[p.key] = other
    shown = checks_of(loop.same_as_fresh())["p"]
    assert (shown["state"], shown["message"]) == ("UNKNOWN", "from another replica")
    del loop.statuses[p.key]
    assert checks_of(loop.same_as_fresh())["p"]["state"] == "PENDING"


def test_a_revision_that_changes_a_check_but_not_its_key_shows_the_change(
    tmp_path: Path,
) -> None:
    loop = Loop(repo_of(tmp_path / "one", [command_check("p", "true", attempts=3)]))
    loop.result(loop.scheduled[0], CheckState.OK, 10.0)
    assert checks_of(loop.same_as_fresh())["p"]["max_attempts"] == 3
    loop.apply(repo_of(tmp_path / "two", [command_check("p", "true", attempts=5)]))
    assert checks_of(loop.same_as_fresh())["p"]["max_attempts"] == 5


def test_checks_gone_with_a_revision_are_gone_and_forgotten(tmp_path: Path) -> None:
    loop = Loop(repo_of(tmp_path / "one", [command_check("p", "true"), command_check("q", "x")]))
    for check in loop.scheduled:
        loop.result(check, CheckState.OK, 10.0)
    loop.same_as_fresh()
    loop.apply(repo_of(tmp_path / "two", [command_check("p", "true")]))
    assert set(checks_of(loop.same_as_fresh())) == {"p"}
    assert set(loop.views._views) == {loop.scheduled[0].key}


def test_the_generation_moves_with_each_change(tmp_path: Path) -> None:
    """What the HTTP endpoint compares before it reuses a snapshot."""
    loop = Loop(repo_of(tmp_path / "one", [command_check("p", "true")]))
    seen = [loop.views.generation]
    loop.snapshot()
    seen.append(loop.views.generation)  # the views built
    loop.snapshot()
    assert loop.views.generation == seen[-1]  # nothing changed
    loop.result(loop.scheduled[0], CheckState.OK, 10.0)
    seen.append(loop.views.generation)
    loop.apply(repo_of(tmp_path / "two", [command_check("p", "true")]))
    seen.append(loop.views.generation)
    assert seen == sorted(set(seen))
