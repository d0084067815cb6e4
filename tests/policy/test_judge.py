"""Judging requests against the repo before the merge: rights, confirmation, hosts."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.model import Request
from reconciler.policy.judge import judge
from reconciler.repo.loader import MapRepo, load_repo, read_tree

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def base() -> MapRepo:
    return load_repo(read_tree(PROJECT))


def ask(
    component: str, action: str, map_name: str = "trading-platform", **extra: object
) -> Request:
    return Request.model_validate(
        {"map": map_name, "component": component, "action": action, "reason": "test", **extra}
    )


def test_an_allowed_request_names_its_rule_and_its_steps(base: MapRepo) -> None:
    verdict = judge(
        ask("api-server", "restart"), base=base, requester="erin@example.com", approver=None
    )
    assert verdict.allowed, verdict.rule
    assert "group developers" in verdict.rule
    [step] = verdict.steps
    assert step.action.command == "systemctl restart trading-api"
    assert [h.name for h in step.hosts] == ["app-server-01"]


def test_a_refused_request_says_why(base: MapRepo) -> None:
    verdict = judge(
        ask("postgresql", "stop"),
        base=base,
        requester="carol@example.com",
        approver="alice@example.com",
    )
    assert not verdict.allowed
    assert "denies 'stop' on postgresql" in verdict.rule


@pytest.mark.parametrize(
    ("approver", "allowed", "why"),
    [
        (None, False, "no one approved"),
        ("alice@example.com", False, "is the requester"),
        ("carol@example.com", False, "may not 'stop' postgresql"),
        ("samir@example.com", True, "confirmed by samir@example.com"),
    ],
)
def test_confirmation_needs_a_second_person_who_may_do_the_same(
    base: MapRepo, approver: str | None, allowed: bool, why: str
) -> None:
    verdict = judge(
        ask("postgresql", "stop"), base=base, requester="alice@example.com", approver=approver
    )
    assert verdict.needs_approval
    assert verdict.allowed is allowed
    assert why in verdict.rule


def test_requested_hosts_must_be_the_components_hosts(base: MapRepo) -> None:
    good = judge(
        ask("api-server", "restart", hosts=["app-server-01"]),
        base=base,
        requester="erin@example.com",
        approver=None,
    )
    assert good.allowed
    bad = judge(
        ask("api-server", "restart", hosts=["db-server-01"]),
        base=base,
        requester="erin@example.com",
        approver=None,
    )
    assert not bad.allowed
    assert "db-server-01" in bad.rule


def test_whole_map_requests_cover_every_component_with_that_action(base: MapRepo) -> None:
    verdict = judge(ask("*", "start"), base=base, requester="alice@example.com", approver=None)
    assert verdict.allowed, verdict.rule
    assert {s.component.id for s in verdict.steps} == {
        "nginx",
        "api-server",
        "postgresql",
        "redis",
        "kafka",
        "risk-engine",
    }
    denied = judge(ask("*", "start"), base=base, requester="carol@example.com", approver=None)
    assert not denied.allowed
    assert "kafka" in denied.rule
    assert not judge(
        ask("*", "backup"), base=base, requester="alice@example.com", approver=None
    ).allowed


def test_unknown_targets_unsigned_commits_and_missing_requesters_are_denied(base: MapRepo) -> None:
    for request in (
        ask("nope", "restart"),
        ask("api-server", "fly"),
        ask("api-server", "restart", map_name="nope"),
    ):
        assert not judge(request, base=base, requester="alice@example.com", approver=None).allowed
    assert not judge(ask("api-server", "restart"), base=base, requester=None, approver=None).allowed
    unsigned = judge(
        ask("api-server", "restart"),
        base=base,
        requester="alice@example.com",
        approver=None,
        untrusted="require_signed_commits: commit 0123456789ab is not signed",
    )
    assert not unsigned.allowed
    assert unsigned.rule == "require_signed_commits: commit 0123456789ab is not signed"
