"""A request's phases on the event stream of a real ``opsmap run``, run on a real sshd.

Two requests merged in one push: Erin's (a developer: no right to the custom action) is
denied, with the rule; Sam's (sre-team, admin) is authorized, its action starts, ends on
``app-01`` and the request ends ``succeeded`` — each a ``request`` or ``action`` event, in
that order, on one stream.
"""

from __future__ import annotations

from typing import Any

import pytest
from requests_e2e_support import (
    APP_HOST,
    ERIN,
    MAP,
    SAM,
    TINA,
    WAIT_S,
    WorldFactory,
    appending,
    batch_files,
)
from sse_support import EventStream

pytestmark = [pytest.mark.sshd, pytest.mark.slow]


def phases(stream: EventStream, path: str) -> list[tuple[str, Any, Any]]:
    return [
        (e["event"], e["data"]["phase"], e["data"].get("outcome", e["data"].get("decision")))
        for e in stream.seen
        if e.get("event") in ("request", "action") and e["data"]["request"] == path
    ]


def test_request_and_action_phases_are_events(make_world: WorldFactory) -> None:
    world = make_world("events")
    world.clone.commit(
        "batch map", author=SAM, files=batch_files(world, [appending(world.site, "mark")])
    )
    running = world.start()
    world.wait_applied(world.push())
    stream = EventStream(running.host, running.port)
    try:
        denied, _ = world.request_pr("erin-mark", "batch", "mark", author=ERIN, merger=TINA)
        allowed, merge = world.request_pr("sam-mark", "batch", "mark", author=SAM, merger=TINA)
        world.push()
        done = stream.until(
            lambda e: (
                e.get("event") == "request"
                and e["data"]["request"] == allowed
                and e["data"]["phase"] == "succeeded"
            ),
            what="sam's request succeeded",
            timeout=WAIT_S,
        )
        assert done["data"]["sha"] == merge
        assert (done["data"]["map"], done["data"]["component"]) == (MAP, "batch")
        assert done["data"]["action"] == "mark"

        [refusal] = [e for e in stream.seen if e.get("event") == "request"
                     and e["data"]["request"] == denied]  # fmt: skip
        assert refusal["data"]["phase"] == "denied"
        assert refusal["data"]["decision"] == "deny"
        assert refusal["data"]["rule"]
        assert refusal["id"] < done["id"]  # in commit order
        assert phases(stream, allowed) == [
            ("request", "authorized", "allow"),
            ("action", "started", None),
            ("action", "finished", "succeeded"),
            ("request", "succeeded", None),
        ]
        [finished] = [e for e in stream.seen if e.get("event") == "action"
                      and e["data"]["phase"] == "finished"]  # fmt: skip
        assert finished["data"]["host"] == APP_HOST
    finally:
        stream.close()
