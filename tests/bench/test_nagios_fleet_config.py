"""The Nagios configuration that benchmarks/fleet_bench.py generates passes ``nagios4 -v``.

The benchmark's Nagios phase runs only where someone runs the benchmark; this keeps its
generator from rotting: the configuration for 2 hosts must load without a warning or an
error and hold the hosts and the 5 checks each, and a copy naming a command that does not
exist is the control (``-v`` must report it). Nagios parses the configuration only, so no
sshd is needed.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "nagios_fleet.py"


def load() -> ModuleType:
    """benchmarks/nagios_fleet.py by path (benchmarks/ is not a package, not on the path)."""
    spec = importlib.util.spec_from_file_location("nagios_fleet", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["nagios_fleet"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


nagios_fleet = load()


@pytest.fixture
def layout(tmp_path: Path) -> Iterator[Any]:
    if not nagios_fleet.NAGIOS.exists():
        pytest.skip(f"{nagios_fleet.NAGIOS} is not installed (Debian: nagios4, monitoring-plugins)")
    (tmp_path / "client_key").write_text("not read by nagios4 -v\n")
    (tmp_path / "known_hosts").write_text("")
    fleet = nagios_fleet.Fleet(
        addresses=["127.1.0.2", "127.1.0.3"],
        port=2222,
        login="opsmap-test",
        client_key=tmp_path / "client_key",
        known_hosts=tmp_path / "known_hosts",
        tcp_port=8080,
    )
    user = pwd.getpwuid(os.geteuid()).pw_name
    generated = nagios_fleet.write_config(tmp_path, fleet, interval=30, user=user)
    try:
        yield generated
    finally:
        shutil.rmtree(generated.control, ignore_errors=True)


def test_the_generated_configuration_verifies_without_a_warning(layout: Any) -> None:
    done = nagios_fleet.verify(layout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert nagios_fleet.verify_counts(done.stdout) == (0, 0), done.stdout
    assert re.search(r"Checked 2 hosts\.", done.stdout), done.stdout
    assert re.search(r"Checked 10 services\.", done.stdout), done.stdout


def test_a_command_that_does_not_exist_is_an_error(layout: Any) -> None:
    objects = layout.objects
    text = objects.read_text()
    assert "check_command bench_tcp\n" in text
    objects.write_text(text.replace("check_command bench_tcp\n", "check_command bench_nope\n"))
    done = nagios_fleet.verify(layout)
    assert done.returncode != 0
    assert nagios_fleet.verify_counts(done.stdout)[1] >= 1, done.stdout


def test_literal_text_keeps_its_dollars_and_semicolons() -> None:
    assert nagios_fleet.literal("awk '{a = $2; print a}'") == "awk '{a = $$2\\; print a}'"
    with pytest.raises(ValueError, match="one line"):
        nagios_fleet.literal("echo a\necho b")
