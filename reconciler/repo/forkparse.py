"""Parsing a large map repo on two cores: a forked child parses half of the files.

YAML parsing is CPU-bound Python, so threads do not help. For short-lived commands
(``opsmap validate``, ``opsmap plan``) on a large repo, a child process forked with the
files already in memory parses every other file and sends back the parsed parts
(pickled: the child is this same program, so its bytes are trusted), while the parent
parses the rest. Any failure of the child falls back to parsing its share here.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

log = logging.getLogger(__name__)

MIN_PARALLEL_BYTES = 1024 * 1024
"""Below this much YAML, forking costs more than it saves."""

F = TypeVar("F")
R = TypeVar("R")


def parse_all(
    files: Sequence[F],
    parse: Callable[[F], R],
    *,
    sizes: Sequence[int],
    then: Callable[[int, R], None],
) -> None:
    """Call ``then(i, parse(files[i]))`` for every file, on two processes when it pays off.

    The parent handles its own share (parse, then ``then``) while the child parses the
    other, so whatever ``then`` does overlaps with the child's parsing. Each index is
    handed to ``then`` exactly once, in no particular order.
    """
    child_share = list(range(1, len(files), 2)) if _worth_forking(sizes) else []
    collect = None
    if child_share:
        try:
            collect = _fork(lambda: [parse(files[i]) for i in child_share])
        except OSError as exc:
            log.debug("cannot fork to parse in parallel: %s", exc)
    mine = set(child_share) if collect is not None else set()
    for i in range(len(files)):
        if i not in mine:
            then(i, parse(files[i]))
    if collect is None:
        return
    from_child = collect()
    if from_child is None or len(from_child) != len(child_share):
        from_child = [parse(files[i]) for i in child_share]
    for i, result in zip(child_share, from_child, strict=True):
        then(i, result)


def _worth_forking(sizes: Sequence[int]) -> bool:
    return (
        hasattr(os, "fork")
        and (os.cpu_count() or 1) > 1
        and threading.active_count() == 1
        and sum(sizes) >= MIN_PARALLEL_BYTES
    )


def _fork(work: Callable[[], list[R]]) -> Callable[[], list[R] | None]:
    """Run ``work`` in a forked child; return a function that waits for its result."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        status = 1
        try:
            os.close(read_fd)
            payload = pickle.dumps(work(), protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(payload)
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)

    def collect() -> list[R] | None:
        with os.fdopen(read_fd, "rb") as pipe:
            payload = pipe.read()
        _, status = os.waitpid(pid, 0)
        if status != 0 or not payload:
            log.warning(
                "the parsing child process failed (status %d): parsing its share here", status
            )
            return None
        result: list[R] = pickle.loads(payload)  # noqa: S301 - our own child's output
        return result

    return collect
