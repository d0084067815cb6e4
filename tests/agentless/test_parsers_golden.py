"""Golden cases for the pure parsers: ``tests/checks/<type>/<case>.json``.

A case holds the probe's ``stdout``, ``stderr`` and ``exit_status``, the check's
``config``, and the ``expected`` outcome: ``state``, ``value`` (null when none) and
optionally ``message`` (exact) or ``message_contains``. Directory names spell the type
with ``_`` for ``:`` (``native_memory``). Adding a case is adding a file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentless.checks.config import CONFIG_MODELS
from agentless.checks.parsers import parse
from agentless.result import CheckState, CommandResult, HostName

CASES_DIR = Path(__file__).resolve().parent.parent / "checks"
CASES = sorted(CASES_DIR.glob("*/*.json"))


def _check_type(directory: str) -> str:
    return directory.replace("_", ":", 1) if directory.startswith("native_") else directory


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_golden_case(path: Path) -> None:
    case: dict[str, Any] = json.loads(path.read_text())
    config = CONFIG_MODELS[_check_type(path.parent.name)].model_validate(case["config"])
    result = CommandResult(
        host=HostName("golden"),
        command="(golden)",
        exit_status=case["exit_status"],
        stdout=case["stdout"],
        stderr=case.get("stderr", ""),
        duration_s=0.01,
    )
    outcome = parse(config, result)
    expected = case["expected"]
    assert outcome.state is CheckState[expected["state"]], outcome
    if expected["value"] is None:
        assert outcome.value is None, outcome
    else:
        assert outcome.value == pytest.approx(expected["value"]), outcome
    if "message" in expected:
        assert outcome.message == expected["message"]
    if "message_contains" in expected:
        assert expected["message_contains"] in outcome.message, outcome.message


def test_every_type_reaches_every_state_it_can() -> None:
    """Each type has golden cases for OK, CRITICAL and UNKNOWN; threshold types for WARNING."""
    seen: dict[str, set[str]] = {}
    for path in CASES:
        seen.setdefault(path.parent.name, set()).add(
            json.loads(path.read_text())["expected"]["state"]
        )
    assert set(seen) == {name.replace(":", "_") for name in CONFIG_MODELS}
    for directory, states in seen.items():
        needed = {"OK", "CRITICAL", "UNKNOWN"}
        if directory.startswith("native_") or directory == "command":
            needed.add("WARNING")
        assert needed <= states, f"{directory} lacks golden cases for {needed - states}"
