"""Checks beyond the schema, each at the offending node's line (issue 2, item 5).

Each test writes a small repo whose only mistake is the one under test, and expects one
finding with its code, file, line, column and the words that explain it.
"""

from __future__ import annotations

import textwrap

import pytest
from validate_support import Repo

M = "maps/shop.yaml"


def check_map(check: str) -> str:
    """A valid map whose only check is ``check`` (YAML, indented as a list item body)."""
    body = textwrap.indent(textwrap.dedent(check).strip(), " " * 12)
    return f"""
    name: shop
    components:
      - id: api
        checks:
          - name: probe
{body}
    """


# ── duplicates ────────────────────────────────────────────────────────────────


def test_duplicate_component_ids(repo: Repo) -> None:
    repo.write(
        M,
        """
        name: shop
        components:
          - id: api
          - id: db
          - id: api
        """,
    )
    outcome = repo.validate()
    assert outcome.code == 1
    finding = outcome.one("duplicate-component")
    repo.assert_at(finding, M, "id: api", 2)
    assert "'api'" in finding["message"]
    assert "line 3" in finding["message"]


def test_duplicate_check_names(repo: Repo) -> None:
    repo.write(
        M,
        """
        name: shop
        components:
          - id: api
            checks:
              - name: up
                type: tcp
                config: {port: 80}
              - name: up
                type: process
                config: {name: api}
        """,
    )
    finding = repo.validate().one("duplicate-check")
    repo.assert_at(finding, M, "name: up", 2)
    assert "'up'" in finding["message"]
    assert "'api'" in finding["message"]


def test_duplicate_action_names(repo: Repo) -> None:
    repo.write(
        M,
        """
        name: shop
        components:
          - id: api
            actions:
              - name: restart
                command: systemctl restart api
              - name: restart
                command: systemctl restart api2
        """,
    )
    finding = repo.validate().one("duplicate-action")
    repo.assert_at(finding, M, "name: restart", 2)
    assert "'restart'" in finding["message"]


def test_same_check_name_in_two_components_is_fine(repo: Repo) -> None:
    repo.write(
        M,
        """
        name: shop
        components:
          - id: api
            checks: [{name: up, type: tcp, config: {port: 80}}]
          - id: db
            checks: [{name: up, type: tcp, config: {port: 5432}}]
        """,
    )
    outcome = repo.validate()
    assert (outcome.code, outcome.findings) == (0, [])


def test_duplicate_map_names_across_files(repo: Repo) -> None:
    repo.write("maps/a.yaml", "name: shop\n")
    repo.write("maps/b.yaml", "name: shop\n")
    finding = repo.validate().one("duplicate-map")
    repo.assert_at(finding, "maps/b.yaml", "name")
    assert "maps/a.yaml" in finding["message"]


# ── dependencies ──────────────────────────────────────────────────────────────


def test_two_component_cycle_names_the_path(repo: Repo) -> None:
    repo.write(
        M,
        """
        name: shop
        components:
          - id: a
            dependencies: [b]
          - id: b
            dependencies: [a]
        """,
    )
    outcome = repo.validate()
    assert outcome.code == 1
    finding = outcome.one("dependency-cycle")
    assert "a → b → a" in finding["message"]
    repo.assert_at(finding, M, "a]")


def test_longer_cycle_names_every_step(repo: Repo) -> None:
    repo.write(
        M,
        """
        name: shop
        components:
          - id: web
            dependencies: [api]
          - id: api
            dependencies:
              - cache
          - id: cache
            dependencies:
              - db
          - id: db
            dependencies:
              - api
        """,
    )
    finding = repo.validate().one("dependency-cycle")
    assert "api → cache → db → api" in finding["message"]
    repo.assert_at(finding, M, "api", 3)  # the `- api` item of db's dependencies


def test_self_dependency(repo: Repo) -> None:
    repo.write(
        M,
        """
        name: shop
        components:
          - id: api
            dependencies: [db, api]
          - id: db
        """,
    )
    outcome = repo.validate()
    finding = outcome.one("self-dependency")
    repo.assert_at(finding, M, "api]")
    assert "'api'" in finding["message"]
    assert outcome.with_code("dependency-cycle") == []


def test_a_diamond_is_not_a_cycle(repo: Repo) -> None:
    repo.write(
        M,
        """
        name: shop
        components:
          - id: web
            dependencies: [api, cache]
          - id: api
            dependencies: [db]
          - id: cache
            dependencies: [db]
          - id: db
        """,
    )
    outcome = repo.validate()
    assert (outcome.code, outcome.findings) == (0, [])


def test_a_long_chain_does_not_exhaust_the_stack(repo: Repo) -> None:
    n = 5000
    lines = ["name: shop", "components:"]
    for i in range(n):
        lines.append(f"  - id: c{i}")
        lines.append(f"    dependencies: [c{(i + 1) % n}]")
    repo.write(M, "\n".join(lines) + "\n")
    finding = repo.validate().one("dependency-cycle")
    assert finding["message"].startswith("dependency cycle: c0 → c1 → c2")


def test_external_dependency_is_a_warning(repo: Repo) -> None:
    repo.write(
        M,
        """
        name: shop
        components:
          - id: api
            dependencies: [zookeeper]
        """,
    )
    outcome = repo.validate()
    assert outcome.code == 0
    finding = outcome.one("external-dependency", severity="warning")
    repo.assert_at(finding, M, "zookeeper")
    assert "'zookeeper'" in finding["message"]
    assert "external" in finding["message"]


def test_external_dependency_is_an_error_with_strict(repo: Repo) -> None:
    repo.write(M, "name: shop\ncomponents:\n  - id: api\n    dependencies: [zookeeper]\n")
    outcome = repo.validate("--strict")
    assert outcome.code == 1
    assert outcome.warnings == []
    repo.assert_at(outcome.one("external-dependency"), M, "zookeeper")


# ── checks ────────────────────────────────────────────────────────────────────


def test_unknown_check_type(repo: Repo) -> None:
    repo.write(
        M,
        check_map(
            """
            type: snmp
            config: {oid: 1.3.6}
            """
        ),
    )
    finding = repo.validate().one("unknown-check-type")
    # the offending node is the `type:` line, not the check's first key
    repo.assert_at(finding, M, "type: snmp")
    assert "'snmp'" in finding["message"]
    assert "http" in finding["message"]
    assert "native:disk_space" in finding["message"]


def test_check_without_type(repo: Repo) -> None:
    repo.write(M, check_map("config: {port: 80}"))
    finding = repo.validate().one("missing-key")
    assert "'type'" in finding["message"]
    assert finding["line"] == repo.pos(M, "name: probe")[0]


def test_http_without_url(repo: Repo) -> None:
    repo.write(
        M,
        check_map(
            """
            type: http
            config:
              expected_status: 200
            """
        ),
    )
    finding = repo.validate().one("missing-key")
    repo.assert_at(finding, M, "config:")
    assert "'url'" in finding["message"]


def test_http_url_must_be_http(repo: Repo) -> None:
    repo.write(M, check_map("type: http\nconfig: {url: 'ftp://example.org/'}"))
    finding = repo.validate().one("bad-check-config")
    repo.assert_at(finding, M, "url:")
    assert "http://" in finding["message"]


@pytest.mark.parametrize("port", ["0", "70000", "-1", "65536"])
def test_tcp_port_out_of_range(repo: Repo, port: str) -> None:
    repo.write(M, check_map(f"type: tcp\nconfig:\n  port: {port}"))
    outcome = repo.validate()
    assert outcome.code == 1
    finding = outcome.one("bad-port")
    repo.assert_at(finding, M, "port:")
    assert port in finding["message"]
    assert "1-65535" in finding["message"]


@pytest.mark.parametrize("port", ["1", "65535"])
def test_tcp_port_bounds_are_valid(repo: Repo, port: str) -> None:
    repo.write(M, check_map(f"type: tcp\nconfig:\n  port: {port}"))
    outcome = repo.validate()
    assert (outcome.code, outcome.findings) == (0, [])


def test_process_without_name(repo: Repo) -> None:
    repo.write(M, check_map("type: process\nconfig:\n  min_count: 2"))
    finding = repo.validate().one("missing-key")
    repo.assert_at(finding, M, "config:")
    assert "'name'" in finding["message"]
    # the check has a name ('probe'): the message must say it is config's name missing
    assert "config" in finding["message"], finding["message"]


def test_command_check_without_command(repo: Repo) -> None:
    repo.write(M, check_map("type: command\nconfig: {}"))
    finding = repo.validate().one("missing-key")
    repo.assert_at(finding, M, "config:")
    assert "'command'" in finding["message"], finding["message"]


@pytest.mark.parametrize("kind", ["native:memory", "native:cpu", "native:disk_space"])
@pytest.mark.parametrize(("warning", "critical"), [(90, 80), (85, 85)])
def test_thresholds_warning_must_be_below_critical(
    repo: Repo, kind: str, warning: int, critical: int
) -> None:
    repo.write(
        M,
        check_map(
            f"""
            type: "{kind}"
            config:
              warning_percent: {warning}
              critical_percent: {critical}
            """
        ),
    )
    finding = repo.validate().one("bad-check-config")
    repo.assert_at(finding, M, "config:")
    assert "warning_percent" in finding["message"]
    assert "critical_percent" in finding["message"]
    assert "below" in finding["message"]


@pytest.mark.parametrize(("key", "value"), [("critical_percent", 101), ("warning_percent", -5)])
def test_thresholds_are_percentages(repo: Repo, key: str, value: int) -> None:
    repo.write(M, check_map(f"type: native:disk_space\nconfig:\n  path: /var\n  {key}: {value}"))
    finding = repo.validate().one("bad-check-config")
    repo.assert_at(finding, M, f"{key}:")
    assert key in finding["message"]
    assert "100" in finding["message"] or "0" in finding["message"]


@pytest.mark.parametrize("value", ["0", "-5", "-0.5"])
def test_check_timeouts_must_be_positive(repo: Repo, value: str) -> None:
    repo.write(M, check_map(f"type: tcp\nconfig: {{port: 80}}\ntimeout_secs: {value}"))
    outcome = repo.validate()
    assert outcome.code == 1
    finding = outcome.one("not-positive")
    repo.assert_at(finding, M, "timeout_secs:")
    assert "timeout_secs" in finding["message"]
    assert "positive" in finding["message"]


@pytest.mark.parametrize("key", ["interval_secs", "retry_interval_secs"])
@pytest.mark.parametrize("value", ["0.000001", "0", "-5", "0.999"])
def test_check_intervals_have_a_floor_of_one_second(repo: Repo, key: str, value: str) -> None:
    repo.write(M, check_map(f"type: tcp\nconfig: {{port: 80}}\n{key}: {value}"))
    outcome = repo.validate()
    assert outcome.code == 1
    finding = outcome.one("interval-too-short")
    repo.assert_at(finding, M, f"{key}:")
    assert f"'{key}' must be at least 1 s" in finding["message"]


def test_an_interval_of_one_second_is_valid(repo: Repo) -> None:
    text = "type: tcp\nconfig: {port: 80}\ninterval_secs: 1\nretry_interval_secs: 1.0"
    repo.write(M, check_map(text))
    outcome = repo.validate()
    assert (outcome.code, outcome.findings) == (0, [])


def test_check_defaults_and_polling_have_the_floor(repo: Repo) -> None:
    repo.write(
        "opsmap.yaml",
        "poll_interval_secs: 0.01\nchecks:\n  retry_interval_secs: 0.000001\n",
    )
    outcome = repo.validate()
    found = outcome.with_code("interval-too-short")
    assert len(found) == 2
    repo.assert_at(found[0], "opsmap.yaml", "poll_interval_secs:")
    repo.assert_at(found[1], "opsmap.yaml", "retry_interval_secs:")


def test_action_timeout_must_be_positive(repo: Repo) -> None:
    repo.write(
        M,
        """
        name: shop
        components:
          - id: api
            actions:
              - name: restart
                command: systemctl restart api
                timeout_secs: 0
        """,
    )
    finding = repo.validate().one("not-positive")
    repo.assert_at(finding, M, "timeout_secs:")


# ── actions ───────────────────────────────────────────────────────────────────


def test_action_without_command(repo: Repo) -> None:
    repo.write(
        M,
        """
        name: shop
        components:
          - id: api
            actions:
              - name: restart
                label: Restart
        """,
    )
    outcome = repo.validate()
    assert outcome.code == 1
    finding = outcome.one("missing-key")
    repo.assert_at(finding, M, "name: restart")
    assert "'command'" in finding["message"], finding["message"]


@pytest.mark.parametrize("blank", ['""', '"   "', '"\\t"', '"\\n"'])
def test_action_with_blank_command(repo: Repo, blank: str) -> None:
    repo.write(
        M,
        f"""
        name: shop
        components:
          - id: api
            actions:
              - name: restart
                command: {blank}
        """,
    )
    outcome = repo.validate()
    assert outcome.code == 1
    (finding,) = outcome.errors
    repo.assert_at(finding, M, "command:")
    assert "command" in finding["message"]


def test_completion_check_of_unknown_type(repo: Repo) -> None:
    repo.write(
        M,
        """
        name: shop
        components:
          - id: api
            actions:
              - name: start
                command: systemctl start api
                async: true
                completion_check:
                  type: ftp
                  config: {port: 21}
        """,
    )
    finding = repo.validate().one("unknown-check-type")
    repo.assert_at(finding, M, "type: ftp")
    assert "'ftp'" in finding["message"]


def test_completion_check_config_is_checked(repo: Repo) -> None:
    repo.write(
        M,
        """
        name: shop
        components:
          - id: api
            actions:
              - name: start
                command: systemctl start api
                completion_check:
                  type: tcp
                  config: {port: 0}
                  interval_secs: 0
        """,
    )
    outcome = repo.validate()
    repo.assert_at(outcome.one("bad-port"), M, "port:")
    repo.assert_at(outcome.one("interval-too-short"), M, "interval_secs:")


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
