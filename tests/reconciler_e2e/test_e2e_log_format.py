"""``opsmap run --log-format json``: every stderr line is one JSON object, in UTC, with the
revision, map, component, check and host as fields; the text format has the zone too."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from e2e_support import HOST, MAP, Opsmap, command_check, component, repo_files, wait_for
from gitrepos import ALICE, Clone

UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def lines(service: Opsmap) -> list[dict[str, Any]]:
    return [json.loads(line) for line in service.stderr().splitlines()]


def test_json_lines_carry_the_context_as_fields(
    clone: Clone, opsmap: Callable[..., Opsmap]
) -> None:
    head = clone.commit(
        "first", author=ALICE, files=repo_files([component("a", [command_check("one", "true")])])
    )
    # a local checkout: watched (watchfiles), whose INFO chatter must not reach the log
    service = opsmap(str(clone.path), extra_args=["--log-format", "json"])
    service.wait_applied(head)
    service.wait_check("a", "one", "OK")
    clone.commit("second", author=ALICE, files={"maps/notes.txt": "not a map\n"})

    wait_for(
        lambda: any(e.get("revision") != head for e in lines(service) if "revision" in e),
        what="the second revision in the log",
    )
    entries = lines(service)
    assert all(UTC.fullmatch(e["time"]) for e in entries)
    assert not [e for e in entries if e["logger"].startswith(("watchfiles", "asyncssh"))]
    applied = next(e for e in entries if e["message"].startswith(f"revision {head[:12]} applied"))
    assert applied["revision"] == head
    assert applied["level"] == "INFO"
    hard = next(e for e in entries if "hard state OK" in e["message"])
    assert (hard["map"], hard["component"], hard["check"], hard["host"]) == (MAP, "a", "one", HOST)


def test_text_lines_are_in_utc_with_the_zone(clone: Clone, opsmap: Callable[..., Opsmap]) -> None:
    head = clone.commit("first", author=ALICE, files=repo_files([component("a", [])]))
    service = opsmap(str(clone.path))
    service.wait_applied(head)
    wait_for(lambda: "applied" in service.stderr(), what="the applied line")

    for line in service.stderr().splitlines():
        assert UTC.fullmatch(line.split(" ", 1)[0]), line
