"""The ``asyncio_leaks`` plugin fails a test that leaves a task running, and only such."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SUPPORT = Path(__file__).resolve().parents[1] / "support"

LEAKY = """
import asyncio

async def forever():
    await asyncio.Event().wait()

def test_leaks_a_task():
    async def main():
        asyncio.get_running_loop().create_task(forever(), name="stray-watcher")
        await asyncio.sleep(0)
    asyncio.run(main())

def test_leaks_in_a_thread():
    import threading
    async def main():
        asyncio.get_running_loop().create_task(forever(), name="thread-stray")
        await asyncio.sleep(0)
    thread = threading.Thread(target=asyncio.run, args=(main(),))
    thread.start()
    thread.join()
"""

TIDY = """
import asyncio

async def forever():
    await asyncio.Event().wait()

def test_awaits_its_tasks():
    async def main():
        async with asyncio.TaskGroup() as group:
            group.create_task(asyncio.sleep(0))
        task = asyncio.get_running_loop().create_task(forever())
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    asyncio.run(main())
"""


def run_inner(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, source: str
) -> pytest.RunResult:
    """Run ``source`` as a test file in a pytest of its own, with only the plugin loaded."""
    pytester.makepyfile(source)
    path = os.pathsep.join(p for p in (str(SUPPORT), os.environ.get("PYTHONPATH", "")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    return pytester.runpytest_subprocess("-p", "asyncio_leaks", "-p", "no:cacheprovider")


def test_a_leaked_task_fails_the_test_and_is_named(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_inner(pytester, monkeypatch, LEAKY)
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*left 1 asyncio task(s) running*stray-watcher (forever)*",
            "*left 1 asyncio task(s) running*thread-stray (forever)*",
        ]
    )


def test_a_test_that_ends_its_tasks_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_inner(pytester, monkeypatch, TIDY).assert_outcomes(passed=1)
