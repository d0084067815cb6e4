"""Strict models: unknown keys and invalid ids are errors at their line (issue 2, item 2)."""

from __future__ import annotations

import pytest
from validate_support import Repo

MAP_WITH_TYPOS = """
    name: shop
    componets: []
    components:
      - id: api
        dependancies: [db]
        hosts:
          lables: {role: app}
        checks:
          - name: up
            type: tcp
            config: {port: 80, hots: 127.0.0.1}
            intervall_secs: 30
        actions:
          - name: restart
            command: systemctl restart api
            confirmation_requried: true
      - id: db
"""


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [
        ("componets", "components"),
        ("dependancies", "dependencies"),
        ("lables", "labels"),
        ("hots", "host"),
        ("intervall_secs", "interval_secs"),
        ("confirmation_requried", "confirmation_required"),
    ],
)
def test_unknown_key_in_a_map_at_the_typo_with_a_suggestion(
    repo: Repo, typo: str, suggestion: str
) -> None:
    repo.write("maps/shop.yaml", MAP_WITH_TYPOS)
    outcome = repo.validate()
    assert outcome.code == 1
    (finding,) = [f for f in outcome.with_code("unknown-key") if f"'{typo}'" in f["message"]]
    repo.assert_at(finding, "maps/shop.yaml", typo)
    assert f"did you mean '{suggestion}'" in finding["message"]


@pytest.mark.parametrize(
    ("rel", "text", "typo", "suggestion"),
    [
        (
            "policies/people.yaml",
            """
            groups:
              ops: [ana@example.org]
            permisions:
              - group: ops
                role: viewer
            """,
            "permisions",
            "permissions",
        ),
        (
            "inventory/hosts.yaml",
            """
            defaults:
              user: opsmap
            hosts:
              - name: web-1
                adress: 10.0.0.1
            """,
            "adress",
            "address",
        ),
        (
            "requests/2026-01-01-restart.yaml",
            """
            map: shop
            component: api
            action: restart
            reasn: stuck
            """,
            "reasn",
            "reason",
        ),
        (
            "opsmap.yaml",
            """
            require_signed_commits: false
            poll_intervall_secs: 10
            """,
            "poll_intervall_secs",
            "poll_interval_secs",
        ),
    ],
    ids=["policy", "inventory", "request", "settings"],
)
def test_unknown_key_in_other_files(
    repo: Repo, rel: str, text: str, typo: str, suggestion: str
) -> None:
    repo.write(rel, text)
    outcome = repo.validate()
    assert outcome.code == 1
    finding = outcome.one("unknown-key")
    repo.assert_at(finding, rel, typo)
    assert typo in finding["message"]
    assert f"did you mean '{suggestion}'" in finding["message"]


def test_unrelated_unknown_key_has_no_suggestion(repo: Repo) -> None:
    repo.write("maps/shop.yaml", "name: shop\nowner_team_slack: '#ops'\n")
    finding = repo.validate().one("unknown-key")
    repo.assert_at(finding, "maps/shop.yaml", "owner_team_slack")
    assert "did you mean" not in finding["message"]


@pytest.mark.parametrize("bad", ["Api", "-api", "_api", ".api", "api server", "api/v1", "é"])
@pytest.mark.parametrize("where", ["component", "check", "action", "map"])
def test_invalid_identifiers(repo: Repo, where: str, bad: str) -> None:
    ids = {"map": "shop", "component": "api", "check": "up", "action": "restart"}
    ids[where] = bad
    repo.write(
        "maps/shop.yaml",
        f"""
        name: "{ids["map"]}"
        components:
          - id: "{ids["component"]}"
            checks:
              - name: "{ids["check"]}"
                type: tcp
                config: {{port: 80}}
            actions:
              - name: "{ids["action"]}"
                command: systemctl restart api
        """,
    )
    outcome = repo.validate()
    assert outcome.code == 1
    finding = outcome.one("bad-id")
    key = "id" if where == "component" else "name"
    occurrence = 1 if where in ("map", "component") else 2 if where == "check" else 3
    if where == "component":
        repo.assert_at(finding, "maps/shop.yaml", "id:")
    else:
        repo.assert_at(finding, "maps/shop.yaml", "name:", occurrence)
    assert repr(bad) in finding["message"] or bad in finding["message"]
    assert key in finding["message"]
    assert "lowercase" in finding["message"]


@pytest.mark.parametrize("good", ["api", "api-server", "api_server", "api.v2", "0cache", "a"])
def test_valid_identifiers(repo: Repo, good: str) -> None:
    repo.write(
        "maps/shop.yaml",
        f"""
        name: {good}
        components:
          - id: {good}
            actions:
              - name: {good}
                command: "true"
        """,
    )
    outcome = repo.validate()
    assert outcome.code == 0, outcome.describe()
    assert outcome.findings == []


def test_ids_in_dependencies_and_requests_are_checked_too(repo: Repo) -> None:
    repo.write(
        "maps/shop.yaml",
        """
        name: shop
        components:
          - id: api
            dependencies: [Postgres]
        """,
    )
    repo.write("requests/r.yaml", "map: shop\ncomponent: API\naction: restart\nreason: x\n")
    outcome = repo.validate()
    bad = outcome.with_code("bad-id")
    assert {f["file"] for f in bad} == {"maps/shop.yaml", "requests/r.yaml"}, outcome.describe()
    by_file = {f["file"]: f for f in bad}
    repo.assert_at(by_file["maps/shop.yaml"], "maps/shop.yaml", "Postgres")
    repo.assert_at(by_file["requests/r.yaml"], "requests/r.yaml", "component:")
