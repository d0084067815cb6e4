"""packaging/prometheus/: the example Prometheus configuration loads the shipped alert
rules (``promtool check config``), and the example Alertmanager route sends every shipped
alert to a receiver of its own (``amtool``, from Debian's prometheus-alertmanager)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "packaging" / "prometheus"
RULES = ROOT / "prometheus" / "opsmap-alerts.yaml"


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_the_scrape_config_loads_the_alert_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (Debian's prometheus package)"
    shutil.copy(EXAMPLES / "prometheus.yml", tmp_path)
    shutil.copy(RULES, tmp_path)
    done = run(promtool, "check", "config", str(tmp_path / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout, done.stdout
    assert "SUCCESS: 6 rules found" in done.stdout, done.stdout


def amtool() -> str:
    found = shutil.which("amtool")
    if not found:
        pytest.skip("amtool is not installed (apt-get install prometheus-alertmanager)")
    return found


def route(*labels: str) -> str:
    config = f"--config.file={EXAMPLES / 'alertmanager.yml'}"
    done = run(amtool(), "config", "routes", "test", config, *labels)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_alertmanager_config_is_valid() -> None:
    done = run(amtool(), "check-config", str(EXAMPLES / "alertmanager.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_shipped_alert_has_its_receiver() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = [rule for group in groups for rule in group["rules"] if "alert" in rule]
    assert len(alerts) == 6
    for rule in alerts:
        severity = rule["labels"]["severity"]
        receiver = route(f"alertname={rule['alert']}", f"severity={severity}")
        if rule["alert"] == "ComponentDown":
            assert receiver == "map-owners", rule["alert"]
        elif severity == "critical":
            assert receiver == "opsmap-operators-page", rule["alert"]
        else:
            assert receiver == "opsmap-operators", rule["alert"]
    assert route("alertname=SomethingElse") == "default"
