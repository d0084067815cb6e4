"""A real Prometheus scraping ``opsmap run`` fires the shipped ComponentDown alert."""

from __future__ import annotations

import copy
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_support import (
    MAP,
    Listener,
    Opsmap,
    Processes,
    component,
    free_port,
    repo_files,
    stop_group,
    tcp_check,
    wait_for,
)
from gitrepos import ALICE, BareRepo, Clone

Start = Callable[..., Opsmap]
PROMETHEUS = "/usr/bin/prometheus"
ALERTS = Path(__file__).resolve().parents[2] / "prometheus" / "opsmap-alerts.yaml"
FIRING_WAIT_S = 90


def rules_for_test(shipped: dict[str, Any]) -> dict[str, Any]:
    """The shipped rules with only ComponentDown's ``for: 1m`` rewritten to ``for: 0s``.

    A test cannot wait a minute of real time for the alert to leave ``pending``; everything
    else about the rule (expr, labels, annotations) and every other rule stays as shipped.
    """
    rules = copy.deepcopy(shipped)
    found = [
        rule
        for group in rules["groups"]
        for rule in group["rules"]
        if rule.get("alert") == "ComponentDown"
    ]
    assert len(found) == 1, "the shipped rules have no single ComponentDown alert"
    assert found[0]["for"] == "1m", found[0]
    found[0]["for"] = "0s"
    return rules


def component_down(shipped: dict[str, Any]) -> dict[str, Any]:
    return next(
        rule
        for group in shipped["groups"]
        for rule in group["rules"]
        if rule.get("alert") == "ComponentDown"
    )


def alerts(port: int) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=10) as reply:
        data = json.load(reply)
    assert data["status"] == "success", data
    found: list[dict[str, Any]] = data["data"]["alerts"]
    return found


@pytest.mark.slow
def test_prometheus_fires_component_down_when_a_service_stops(
    remote: BareRepo, clone: Clone, opsmap: Start, processes: Processes, tmp_path: Path
) -> None:
    if not Path(PROMETHEUS).exists():
        pytest.skip(f"{PROMETHEUS} is absent: apt-get install prometheus (CI installs it)")
    shipped = yaml.safe_load(ALERTS.read_text())
    test_rules = rules_for_test(shipped)
    shipped_rule, test_rule = component_down(shipped), component_down(test_rules)
    assert shipped_rule["expr"].strip() == 'opsmap_component_status{status="error"} == 1'
    assert {k: v for k, v in test_rule.items() if k != "for"} == {
        k: v for k, v in shipped_rule.items() if k != "for"
    }
    assert test_rule["labels"] == {"severity": "critical"}

    service_port = Listener().open()
    try:
        first = clone.commit(
            "a service on a port",
            author=ALICE,
            files=repo_files([component("api", [tcp_check("port", service_port.port)])]),
        )
        clone.push()
        service = opsmap(remote.file_url, poll_interval=3600)
        service.wait_applied(first)
        service.wait_check("api", "port", "OK")

        rules_file = tmp_path / "prometheus" / "opsmap-alerts.yaml"
        rules_file.parent.mkdir()
        rules_file.write_text(
            "# A copy of prometheus/opsmap-alerts.yaml in which only ComponentDown's\n"
            "# `for: 1m` is rewritten to `for: 0s`, so that the test need not wait a minute.\n"
            + yaml.safe_dump(test_rules, sort_keys=False)
        )
        config = tmp_path / "prometheus" / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(rules_file)],
                    "scrape_configs": [
                        {
                            "job_name": "opsmap",
                            "static_configs": [{"targets": [f"{service.host}:{service.port}"]}],
                        }
                    ],
                }
            )
        )
        port = free_port()
        prometheus = processes.start(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'prometheus' / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            log=tmp_path / "prometheus.log",
        )
        wait_for(
            lambda: prometheus.poll() is not None or alerts(port) is not None,
            what="prometheus to answer",
            ignore=(OSError, ValueError),
        )
        assert prometheus.poll() is None, (tmp_path / "prometheus.log").read_text()
        assert not [a for a in alerts(port) if a["labels"]["alertname"] == "ComponentDown"]

        service_port.close()  # the service stops

        def firing() -> dict[str, Any] | None:
            for alert in alerts(port):
                labels = alert["labels"]
                if (
                    labels["alertname"] == "ComponentDown"
                    and labels.get("map") == MAP
                    and labels.get("component") == "api"
                    and alert["state"] == "firing"
                ):
                    return alert
            return None

        alert = wait_for(
            firing,
            what="ComponentDown firing for e2e/api",
            timeout=FIRING_WAIT_S,
            interval=0.5,
            ignore=(OSError, ValueError),
        )
        assert alert["labels"]["severity"] == "critical"
        assert alert["labels"]["status"] == "error"
        stop_group(prometheus)
        assert stop_group(service.proc) == 0, service.stderr()
    finally:
        service_port.close()
