"""A pytest plugin: a test fails when it leaves asyncio tasks running.

Tests drive coroutines with ``asyncio.run()`` (no pytest-asyncio here). When the main
coroutine returns, ``asyncio.run`` cancels whatever tasks are still pending, silently:
a leaked reader, watcher or timer would pass unseen. The seam is the function that does
that cancelling (``asyncio.runners._cancel_all_tasks``, called by ``Runner.close``, on
the interpreters this project supports): for the duration of each test it is wrapped to
note every task still pending first, then cancel as before, and the test fails at
teardown naming them. Loops run in threads by the test count too.
"""

from __future__ import annotations

import asyncio
import asyncio.runners
import threading
from collections.abc import Iterator

import pytest


def _describe(task: asyncio.Task[object]) -> str:
    coro = task.get_coro()
    where = getattr(coro, "__qualname__", None) or repr(coro)
    return f"{task.get_name()} ({where})"


@pytest.fixture(autouse=True)
def no_leaked_asyncio_tasks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail the test if an ``asyncio.run`` in it ended with tasks still pending."""
    leaked: list[str] = []
    lock = threading.Lock()
    cancel_all_tasks = asyncio.runners._cancel_all_tasks

    def noting_cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
        pending = [_describe(task) for task in asyncio.all_tasks(loop) if not task.done()]
        with lock:
            leaked.extend(pending)
        cancel_all_tasks(loop)

    monkeypatch.setattr(asyncio.runners, "_cancel_all_tasks", noting_cancel_all_tasks)
    yield
    if leaked:
        pytest.fail(
            f"the test left {len(leaked)} asyncio task(s) running when its event loop "
            f"finished: {', '.join(sorted(leaked))}",
            pytrace=False,
        )
