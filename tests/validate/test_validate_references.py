"""Checks beyond the schema that names refer to what exists: permissions, policies,
requests, inventory and selectors, each at the offending node's line (issue 2, item 5).

As in ``test_validate_rules.py``: each test writes a small repo whose only mistake is the
one under test, and expects one finding with its code, file, line, column and the words
that explain it.
"""

from __future__ import annotations

import textwrap

import pytest
from validate_support import Repo

M = "maps/shop.yaml"


# ── permissions ───────────────────────────────────────────────────────────────

PERMISSIONS_MAP = """
    name: shop
    components:
      - id: api
        actions:
          - name: restart
            command: systemctl restart api
          - name: clear_cache
            command: api-cli cache clear
      - id: db
permissions:
{bindings}
"""


def permissions_map(bindings: str) -> str:
    body = textwrap.indent(textwrap.dedent(bindings).strip(), " " * 6)
    return PERMISSIONS_MAP.replace("permissions:\n{bindings}", "    permissions:\n" + body)


def test_binding_with_unknown_role(repo: Repo) -> None:
    repo.write(M, permissions_map("- group: ops\n  role: superuser"))
    finding = repo.validate().one("unknown-role")
    repo.assert_at(finding, M, "role:")
    assert "'superuser'" in finding["message"]
    assert "operator" in finding["message"]


@pytest.mark.parametrize("rule", ["allow", "deny"])
def test_binding_with_unknown_verb(repo: Repo, rule: str) -> None:
    repo.write(
        M,
        permissions_map(
            f"""
            - group: ops
              role: viewer
              overrides:
                components:
                  api:
                    {rule}: [start, explode]
            """
        ),
    )
    finding = repo.validate().one("unknown-verb")
    repo.assert_at(finding, M, "explode")
    assert "'explode'" in finding["message"]


def test_binding_with_unknown_component(repo: Repo) -> None:
    repo.write(
        M,
        permissions_map(
            """
            - group: ops
              role: viewer
              overrides:
                components:
                  ghost:
                    allow: [start]
            """
        ),
    )
    outcome = repo.validate()
    assert outcome.code == 1
    finding = outcome.one("unknown-component")
    repo.assert_at(finding, M, "ghost")
    assert "'ghost'" in finding["message"]
    assert "'shop'" in finding["message"]


def test_binding_with_unknown_component_in_action_overrides(repo: Repo) -> None:
    repo.write(
        M,
        permissions_map(
            """
            - user: ana@example.org
              role: operator
              overrides:
                actions:
                  ghost:
                    restart: allow
            """
        ),
    )
    finding = repo.validate().one("unknown-component")
    repo.assert_at(finding, M, "ghost")


def test_binding_with_unknown_action(repo: Repo) -> None:
    repo.write(
        M,
        permissions_map(
            """
            - group: ops
              role: operator
              overrides:
                actions:
                  api:
                    clear_cache: allow
                    rebuild: allow
            """
        ),
    )
    outcome = repo.validate()
    assert outcome.code == 1
    finding = outcome.one("unknown-action")
    repo.assert_at(finding, M, "rebuild")
    assert "'rebuild'" in finding["message"]
    assert "'api'" in finding["message"]


def test_binding_action_decision_must_be_allow_or_deny(repo: Repo) -> None:
    repo.write(
        M,
        permissions_map(
            """
            - group: ops
              role: operator
              overrides:
                actions:
                  api:
                    clear_cache: maybe
            """
        ),
    )
    finding = repo.validate().one("bad-decision")
    repo.assert_at(finding, M, "clear_cache: maybe")
    assert "'maybe'" in finding["message"]


def test_binding_names_a_group_or_a_user(repo: Repo) -> None:
    repo.write(M, permissions_map("- role: viewer"))
    outcome = repo.validate()
    assert outcome.code == 1
    (finding,) = outcome.errors
    assert "group" in finding["message"]
    assert "user" in finding["message"]
    assert finding["line"] == repo.pos(M, "role: viewer")[0]


POLICY_MAP = """
    name: shop
    components:
      - id: api
        actions:
          - name: clear_cache
            command: api-cli cache clear
"""


def test_policy_naming_unknown_map(repo: Repo) -> None:
    repo.write(M, POLICY_MAP)
    repo.write(
        "policies/ops.yaml",
        """
        groups:
          ops: [ana@example.org]
        permissions:
          - group: ops
            role: operator
            maps: [shop, warehouse]
        """,
    )
    outcome = repo.validate()
    assert outcome.code == 1
    finding = outcome.one("unknown-map")
    repo.assert_at(finding, "policies/ops.yaml", "warehouse")
    assert "'warehouse'" in finding["message"]


def test_policy_binding_unknown_role_component_action(repo: Repo) -> None:
    repo.write(M, POLICY_MAP)
    rel = "policies/ops.yaml"
    repo.write(
        rel,
        """
        groups:
          ops: [ana@example.org]
        permissions:
          - group: ops
            role: root
          - group: ops
            role: operator
            maps: [shop]
            overrides:
              components:
                ghost: {allow: [view]}
              actions:
                api: {clear_cache: allow, rebuild: deny}
        """,
    )
    outcome = repo.validate()
    # the unknown role makes the whole file invalid: report at least that, at its line
    repo.assert_at(outcome.one("unknown-role"), rel, "role: root")
    repo.write(rel, repo.files[rel].replace("role: root", "role: viewer"))
    outcome = repo.validate()
    repo.assert_at(outcome.one("unknown-component"), rel, "ghost")
    repo.assert_at(outcome.one("unknown-action"), rel, "rebuild")


def test_policy_with_only_unknown_maps_gives_a_clear_message(repo: Repo) -> None:
    """A binding whose maps are all unknown must not say "not in map " with no name."""
    repo.write(M, POLICY_MAP)
    repo.write(
        "policies/ops.yaml",
        """
        permissions:
          - user: ana@example.org
            role: operator
            maps: [warehouse]
            overrides:
              components:
                picker: {allow: [start]}
        """,
    )
    outcome = repo.validate()
    repo.assert_at(outcome.one("unknown-map"), "policies/ops.yaml", "warehouse")
    for finding in outcome.with_code("unknown-component"):
        assert not finding["message"].rstrip().endswith("not in map"), finding["message"]
        assert "map  " not in finding["message"], finding["message"]


def test_policy_groups_and_members(repo: Repo) -> None:
    repo.write(
        "policies/ops.yaml",
        """
        groups:
          ops: [ana@example.org, not-an-email]
        """,
    )
    outcome = repo.validate()
    assert outcome.code == 1
    (finding,) = outcome.errors
    repo.assert_at(finding, "policies/ops.yaml", "not-an-email")


# ── requests ──────────────────────────────────────────────────────────────────

REQUEST_MAP = """
    name: shop
    components:
      - id: api
        hosts: {labels: {role: app}}
        actions:
          - name: restart
            command: systemctl restart api
          - name: start
            command: systemctl start api
"""


@pytest.mark.parametrize(
    ("request_text", "code", "needle", "words"),
    [
        ("map: warehouse\ncomponent: api\naction: restart", "unknown-map", "map:", "'warehouse'"),
        (
            "map: shop\ncomponent: ghost\naction: restart",
            "unknown-component",
            "component:",
            "'ghost'",
        ),
        ("map: shop\ncomponent: api\naction: explode", "unknown-action", "action:", "'explode'"),
        (
            'map: shop\ncomponent: "*"\naction: backup',
            "bad-whole-map-action",
            "action:",
            "'backup'",
        ),
    ],
    ids=["map", "component", "action", "whole-map"],
)
def test_request_references(
    repo: Repo, request_text: str, code: str, needle: str, words: str
) -> None:
    repo.write(M, REQUEST_MAP)
    rel = "requests/2026/11/restart-api.yaml"
    repo.write(rel, request_text + "\nreason: it is stuck\n")
    outcome = repo.validate()
    assert outcome.code == 1
    finding = outcome.one(code)
    repo.assert_at(finding, rel, needle)
    assert words in finding["message"]


def test_valid_requests(repo: Repo) -> None:
    repo.write(M, REQUEST_MAP)
    repo.write("inventory/hosts.yaml", "hosts:\n  - name: app-1\n    labels: {role: app}\n")
    repo.write("requests/a.yaml", "map: shop\ncomponent: api\naction: restart\nreason: x\n")
    repo.write(
        "requests/b.yaml", 'map: shop\ncomponent: "*"\naction: start\nreason: x\nhosts: [app-1]\n'
    )
    outcome = repo.validate()
    assert (outcome.code, outcome.findings) == (0, []), outcome.describe()


def test_request_names_no_command(repo: Repo) -> None:
    repo.write(M, REQUEST_MAP)
    rel = "requests/a.yaml"
    repo.write(rel, "map: shop\ncomponent: api\naction: restart\nreason: x\ncommand: rm -rf /\n")
    finding = repo.validate().one("unknown-key")
    repo.assert_at(finding, rel, "command:")


def test_request_hosts(repo: Repo) -> None:
    repo.write(M, REQUEST_MAP)
    repo.write(
        "inventory/hosts.yaml",
        """
        hosts:
          - name: app-1
            labels: {role: app}
          - name: db-1
            labels: {role: db}
        """,
    )
    rel = "requests/a.yaml"
    request = "map: shop\ncomponent: api\naction: restart\nreason: x\nhosts: [nowhere, db-1]\n"
    repo.write(rel, request)
    outcome = repo.validate()
    repo.assert_at(outcome.one("unknown-host"), rel, "nowhere")
    repo.assert_at(outcome.one("host-not-selected"), rel, "db-1")


def test_request_reason_is_required_and_not_blank(repo: Repo) -> None:
    repo.write(M, REQUEST_MAP)
    repo.write("requests/a.yaml", "map: shop\ncomponent: api\naction: restart\n")
    repo.write("requests/b.yaml", "map: shop\ncomponent: api\naction: restart\nreason: '  '\n")
    outcome = repo.validate()
    assert {f["file"] for f in outcome.errors} == {"requests/a.yaml", "requests/b.yaml"}
    assert "'reason'" in outcome.one("missing-key")["message"]


def test_request_against_a_broken_map_does_not_claim_the_map_is_missing(repo: Repo) -> None:
    """When maps/shop.yaml has an error, requests naming 'shop' must not say no file defines it."""
    repo.write(M, REQUEST_MAP + "        bogus: 1\n")
    repo.write("requests/a.yaml", "map: shop\ncomponent: api\naction: restart\nreason: x\n")
    outcome = repo.validate()
    assert outcome.code == 1
    assert outcome.with_code("unknown-key"), outcome.describe()
    for finding in outcome.errors:
        if finding["file"] == "requests/a.yaml":
            assert "no file in maps/ defines" not in finding["message"], finding["message"]


# ── inventory and selectors ───────────────────────────────────────────────────


def test_inventory_duplicate_host_names(repo: Repo) -> None:
    rel = "inventory/hosts.yaml"
    repo.write(
        rel,
        """
        hosts:
          - name: web-1
            address: 10.0.0.1
          - name: web-2
          - name: web-1
            address: 10.0.0.3
        """,
    )
    outcome = repo.validate()
    assert outcome.code == 1
    finding = outcome.one("duplicate-host")
    repo.assert_at(finding, rel, "name: web-1", 2)
    assert "'web-1'" in finding["message"]
    first_line = repo.pos(rel, "name: web-1")[0]
    assert f"{rel}:{first_line}" in finding["message"] or f"line {first_line}" in finding["message"]


def test_inventory_duplicate_host_names_across_files(repo: Repo) -> None:
    repo.write("inventory/a.yaml", "hosts:\n  - name: web-1\n")
    repo.write("inventory/b.yaml", "hosts:\n  - name: web-1\n")
    finding = repo.validate().one("duplicate-host")
    assert finding["file"] == "inventory/b.yaml"
    assert "inventory/a.yaml" in finding["message"]


@pytest.mark.parametrize("port", ["0", "70000", "-22"])
@pytest.mark.parametrize("where", ["host", "defaults"])
def test_inventory_bad_ports(repo: Repo, where: str, port: str) -> None:
    rel = "inventory/hosts.yaml"
    if where == "host":
        repo.write(rel, f"hosts:\n  - name: web-1\n    port: {port}\n")
    else:
        repo.write(rel, f"defaults:\n  port: {port}\nhosts:\n  - name: web-1\n")
    finding = repo.validate().one("bad-port")
    repo.assert_at(finding, rel, "port:")
    assert port in finding["message"]


def test_inventory_unknown_transport(repo: Repo) -> None:
    rel = "inventory/hosts.yaml"
    repo.write(rel, "hosts:\n  - name: web-1\n    transport: telnet\n")
    finding = repo.validate().one("unknown-transport")
    repo.assert_at(finding, rel, "transport:")
    assert "'telnet'" in finding["message"]


SELECTOR_MAP = """
    name: shop
    components:
      - id: api
        hosts:
          labels: {role: app, env: production}
        checks: [{name: up, type: tcp, config: {port: 80}}]
      - id: db
        agent:
          labels: {role: database}
        checks: [{name: up, type: tcp, config: {port: 5432}}]
"""
INVENTORY = """
    hosts:
      - name: app-1
        labels: {role: app, env: staging}
      - name: db-1
        labels: {role: database, env: production}
"""


def test_selector_matching_no_host_is_a_warning(repo: Repo) -> None:
    repo.write(M, SELECTOR_MAP)
    repo.write("inventory/hosts.yaml", INVENTORY)
    outcome = repo.validate()
    assert outcome.code == 0, outcome.describe()
    finding = outcome.one("no-matching-host", severity="warning")
    repo.assert_at(finding, M, "hosts:")
    assert "'api'" in finding["message"]
    assert "role=app" in finding["message"]
    assert "env=production" in finding["message"]


def test_selector_matching_no_host_is_an_error_with_strict(repo: Repo) -> None:
    repo.write(M, SELECTOR_MAP)
    repo.write("inventory/hosts.yaml", INVENTORY)
    outcome = repo.validate("--strict")
    assert outcome.code == 1
    assert outcome.warnings == []
    repo.assert_at(outcome.one("no-matching-host"), M, "hosts:")


def test_selector_and_agent_spelling_together_is_an_error(repo: Repo) -> None:
    repo.write(
        M,
        """
        name: shop
        components:
          - id: api
            agent: {labels: {role: app}}
            hosts: {labels: {role: app}}
        """,
    )
    outcome = repo.validate()
    assert outcome.code == 1
    (finding,) = outcome.errors
    assert "'hosts'" in finding["message"]
    assert "'agent'" in finding["message"]
