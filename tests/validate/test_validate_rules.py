"""Checks beyond the schema within a map (duplicates, dependencies, checks, actions), each
at the offending node's line (issue 2, item 5). References to other files:
``test_validate_references.py``.

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


def test_a_completion_check_of_an_action_that_is_not_async_never_runs(repo: Repo) -> None:
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
                  config: {port: 8080}
              - name: stop
                command: systemctl stop api
                async: true
                completion_check:
                  type: tcp
                  config: {port: 8080}
        """,
    )
    outcome = repo.validate()
    assert outcome.code == 0
    finding = outcome.one("completion-check-unused", severity="warning")
    repo.assert_at(finding, M, "completion_check:")
    assert "'start'" in finding["message"]
    assert "async: true" in finding["message"]


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
