"""The check rows as stored: whether each host was reached, as the fleet's rows say."""

from __future__ import annotations

from reconciler.loop.checkstate import CheckStatus
from reconciler.loop.rows import check_rows, reachable_from_rows, statuses_from_rows
from reconciler.loop.scheduler import CheckKey


def _row(check: str, host: str, last_run: float | None, reached: int) -> tuple[object, ...]:
    return ("m", "api", check, host, 0, "hard", 0, 1, "ok", None, last_run, 0.1, None, 0, [0],
            reached)  # fmt: skip


def test_a_hosts_newest_run_says_whether_it_was_reached() -> None:
    rows = [
        _row("http", "h1", 100.0, 1),
        _row("tcp", "h1", 200.0, 0),  # the newest run on h1: unreachable
        _row("disk", "h1", 150.0, 1),
        _row("http", "h2", 300.0, 1),
        _row("tcp", "h2", 50.0, 0),
        _row("http", "h3", None, 0),  # never ran: says nothing
    ]
    assert reachable_from_rows(rows) == {"h1": False, "h2": True}
    assert reachable_from_rows(list(reversed(rows))) == {"h1": False, "h2": True}


def test_rows_carry_the_hosts_reachability_and_read_back_as_the_same_statuses() -> None:
    statuses = {
        CheckKey("m", "api", "http", "h1"): CheckStatus(last_run=10.0),
        CheckKey("m", "api", "http", "h2"): CheckStatus(last_run=20.0),
    }
    rows = check_rows(statuses, wall_offset=1000.0, reachable={"h1": False})
    assert [(r[3], r[15]) for r in rows] == [("h1", 0), ("h2", 1)]  # unknown host: reached
    assert reachable_from_rows(rows) == {"h1": False, "h2": True}
    back = statuses_from_rows(rows, wall_offset=1000.0)
    assert {k: s.last_run for k, s in back.items()} == {k: s.last_run for k, s in statuses.items()}
