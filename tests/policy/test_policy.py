"""The policy engine: the seed's scenarios, and the rules behind them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.policy.engine import PolicySet, Question, question_for_action
from reconciler.repo.loader import load_repo, read_tree
from reconciler.rules import check_repo

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def seed() -> PolicySet:
    repo = load_repo(read_tree(PROJECT))
    return PolicySet.from_repo(repo)


def can(
    policies: PolicySet,
    subject: str,
    component: str,
    action: str,
    map_name: str = "trading-platform",
) -> bool:
    return policies.decide(question_for_action(subject, map_name, component, action)).allowed


@pytest.mark.parametrize(
    ("subject", "component", "action", "allowed"),
    [
        # sre-team does everything
        ("alice@example.com", "postgresql", "stop", True),
        ("alice@example.com", "postgresql", "backup", True),
        ("samir@example.com", "redis", "flush_cache", True),
        # trading-ops: operator, but not stop/restart on postgresql, redis, kafka
        ("carol@example.com", "postgresql", "stop", False),
        ("carol@example.com", "redis", "stop", False),
        ("carol@example.com", "kafka", "start", False),
        ("carol@example.com", "nginx", "restart", True),
        ("carol@example.com", "api-server", "clear_cache", True),
        ("carol@example.com", "risk-engine", "recalculate", True),
        ("carol@example.com", "postgresql", "backup", False),
        # developers: viewers who may restart api-server and clear its cache
        ("erin@example.com", "api-server", "restart", True),
        ("erin@example.com", "api-server", "clear_cache", True),
        ("erin@example.com", "api-server", "stop", False),
        ("frank@example.com", "nginx", "restart", False),
        # bob@external.com only views
        ("bob@external.com", "api-server", "restart", False),
        ("bob@external.com", "api-server", "clear_cache", False),
    ],
)
def test_seed_scenarios(
    seed: PolicySet, subject: str, component: str, action: str, allowed: bool
) -> None:
    assert can(seed, subject, component, action) is allowed


def test_bob_views_and_reads_logs(seed: PolicySet) -> None:
    for verb in ("view", "logs"):
        decision = seed.decide(Question("bob@external.com", verb, "trading-platform", "kafka"))
        assert decision.allowed
        assert "user bob@external.com (viewer)" in decision.rule


def test_a_refusal_names_the_rule_and_its_place(seed: PolicySet) -> None:
    decision = seed.decide(
        question_for_action("carol@example.com", "trading-platform", "postgresql", "stop")
    )
    assert not decision.allowed
    assert "maps/trading-platform.yaml:" in decision.rule
    assert "group trading-ops" in decision.rule
    assert "denies 'stop' on postgresql" in decision.rule


def test_identities_are_case_insensitive(seed: PolicySet) -> None:
    assert can(seed, "Alice@Example.COM", "postgresql", "stop")


def make_repo(tmp_path: Path, policies: str) -> PolicySet:
    (tmp_path / "maps").mkdir()
    (tmp_path / "policies").mkdir()
    (tmp_path / "maps" / "shop.yaml").write_text(
        textwrap.dedent("""\
        name: shop
        components:
          - id: api
            actions:
              - {name: restart, command: systemctl restart api}
              - {name: purge, command: /opt/purge}
          - id: db
            actions:
              - {name: stop, command: systemctl stop db}
        """)
    )
    (tmp_path / "maps" / "other.yaml").write_text("name: other\ncomponents: [{id: api}]\n")
    (tmp_path / "policies" / "p.yaml").write_text(textwrap.dedent(policies))
    repo = load_repo(read_tree(tmp_path))
    assert not [f for f in check_repo(repo) if f.severity.value == "error"], check_repo(repo)
    return PolicySet.from_repo(repo)


def test_an_explicit_deny_anywhere_beats_an_admin_grant(tmp_path: Path) -> None:
    policies = make_repo(
        tmp_path,
        """\
        groups:
          admins: [ann@x.io]
          ops: [ann@x.io, olaf@x.io]
        permissions:
          - {group: admins, role: admin}
          - group: ops
            role: operator
            overrides: {components: {db: {deny: [stop]}}}
        """,
    )
    assert not can(policies, "ann@x.io", "db", "stop", "shop")
    assert can(policies, "ann@x.io", "api", "purge", "shop")


def test_custom_actions_need_admin_or_an_explicit_allow(tmp_path: Path) -> None:
    policies = make_repo(
        tmp_path,
        """\
        groups:
          ops: [olaf@x.io]
          cleaners: [cleo@x.io]
        permissions:
          - {group: ops, role: operator}
          - group: cleaners
            role: viewer
            overrides: {actions: {api: {purge: allow}}}
        """,
    )
    assert can(policies, "olaf@x.io", "api", "restart", "shop")
    assert not can(policies, "olaf@x.io", "api", "purge", "shop")
    assert can(policies, "cleo@x.io", "api", "purge", "shop")
    assert not can(policies, "cleo@x.io", "api", "restart", "shop")


def test_a_policy_applies_only_to_the_maps_it_names(tmp_path: Path) -> None:
    policies = make_repo(
        tmp_path,
        """\
        groups:
          ops: [olaf@x.io]
        permissions:
          - {group: ops, role: operator, maps: [other]}
        """,
    )
    assert not policies.decide(Question("olaf@x.io", "view", "shop", "api")).allowed
    assert policies.decide(Question("olaf@x.io", "view", "other", "api")).allowed


def test_group_subjects_and_the_list_of_subjects(tmp_path: Path) -> None:
    policies = make_repo(
        tmp_path,
        """\
        groups:
          ops: [olaf@x.io]
        permissions:
          - {group: ops, role: operator}
          - {user: vic@x.io, role: viewer}
        """,
    )
    assert policies.decide(question_for_action("group:ops", "shop", "api", "restart")).allowed
    assert policies.subjects() == ["group:ops", "olaf@x.io", "vic@x.io"]


def test_cli_exit_codes_and_rule(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(PROJECT)
    assert main(["policy", "can", "carol@example.com", "stop", "trading-platform/postgresql"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("deny: maps/trading-platform.yaml:")
    assert (
        main(
            ["policy", "can", "erin@example.com", "run", "trading-platform/api-server/clear_cache"]
        )
        == 0
    )
    assert capsys.readouterr().out.startswith("allow: ")
    assert main(["policy", "can", "erin@example.com", "fly", "trading-platform/api-server"]) == 2
    assert main(["policy", "can", "erin@example.com", "view", "nope/api-server"]) == 2
    assert main(["policy", "can", "erin@example.com", "view", "trading-platform"]) == 2
