"""How code on the event loop calls the state store: at once, or in a worker thread.

SQLite answers in microseconds from a file on this machine, on connections that the store
keeps for the loop's thread (:mod:`reconciler.store.sqlite.store`): its calls stay on the
loop, where they are ordered with everything else the loop does. PostgreSQL answers over
the network: a round trip of milliseconds, and no answer at all while the database hangs
(stopped, or a peer gone without a reset: the server's own ``statement_timeout`` cannot
fire then, and the kernel still acknowledges what is sent). A store says which it is
(:attr:`~reconciler.store.protocol.StateStore.blocks`), and :class:`StateCalls` runs a
blocking store's calls in a thread of its own pool (one way for every caller: the store's
protocol stays synchronous, and a hung database cannot take the threads that git and the
documents use), the loop awaiting each under :data:`CALL_TIMEOUT_S`.

A call the loop gave up on may still complete in its thread: every store call made
through here is one the callers may repeat (a journal row by its path, an audit record by
its id, a cursor or meta value by its key, a mark by its seqs), so a retry after a timeout
writes nothing twice.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from reconciler.store.protocol import StoreError

if TYPE_CHECKING:
    from reconciler.store.protocol import StateStore
    from reconciler.store.writes import StateWrites

T = TypeVar("T")

CALL_TIMEOUT_S = 20.0
"""How long the loop awaits one call: past every bound the database enforces itself (a
connection from the pool in 1 s, a statement in 10 s), so it fires only on a hang."""
THREADS = 4
"""The pool's threads: as many as the store's connections (more would wait for one)."""
THREAD_NAME = "opsmap-state"

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _threads() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(THREADS, thread_name_prefix=THREAD_NAME)
        return _executor


class StateCalls:
    """Calls a store's functions from the loop (see the module's docstring).

    ``blocks``: run each call in a worker thread (PostgreSQL); else call it at once.
    ``writes``: the store's :class:`~reconciler.store.writes.StateWrites`, told of a call
    that timed out."""

    def __init__(
        self,
        *,
        blocks: bool = False,
        writes: StateWrites | None = None,
        timeout_s: float = CALL_TIMEOUT_S,
    ) -> None:
        self.blocks = blocks
        self._writes = writes
        self._timeout_s = timeout_s
        self._timed_out: set[str] = set()

    @classmethod
    def of(cls, store: StateStore) -> StateCalls:
        return cls(blocks=store.blocks, writes=store.writes)

    async def __call__(self, what: str | None, fn: Callable[..., T], /, *args: object) -> T:
        """``fn(*args)``, in a thread when the store blocks.

        When it has not answered within the timeout: :class:`StateWriteError` (``what``:
        logged once, counted and shown by ``/healthz`` like any failed write, until a later
        call of ``what`` answers), or :class:`StoreError` for a read that ``what`` is None
        for (the status's: its callers keep what they last read)."""
        if not self.blocks:
            return fn(*args)
        call = functools.partial(contextvars.copy_context().run, fn, *args)
        future = asyncio.get_running_loop().run_in_executor(_threads(), call)
        try:
            async with asyncio.timeout(self._timeout_s):
                result = await future
        except TimeoutError:
            problem = _NoAnswer(f"the state database did not answer within {self._timeout_s:g} s")
            if what is None or self._writes is None:
                raise StoreError(str(problem)) from None
            self._timed_out.add(what)
            raise self._writes.failed(what, problem) from None
        if what is not None and what in self._timed_out and self._writes is not None:
            self._timed_out.discard(what)
            self._writes.succeeded(what)
        return result


class _NoAnswer(Exception):
    """A call the database did not answer in time (its one-line reason)."""


IMMEDIATE = StateCalls()
"""Calls made at once (a store that does not block, and tests of the callers alone)."""
