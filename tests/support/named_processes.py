"""Real processes with a chosen comm, for the process probe's tests."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

#: A real process that names itself (prctl PR_SET_NAME: any 15 bytes, newlines included)
#: and waits for its stdin to close; with ``exit`` it ends at once and stays a zombie.
_NAMED = (
    "import ctypes, sys\n"
    "ctypes.CDLL(None).prctl(15, ctypes.c_char_p(sys.argv[1].encode()), 0, 0, 0)\n"
    "print('named', flush=True)\n"
    "if sys.argv[2] == 'wait':\n"
    "    sys.stdin.read()\n"
)


@contextlib.contextmanager
def named(*comms: str, then: str = "wait") -> Iterator[list[int]]:
    """Processes whose comm is each of ``comms`` (checked in /proc), until the block ends."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _NAMED, comm, then],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for comm in comms
    ]
    try:
        for child, comm in zip(children, comms, strict=True):
            assert child.stdout is not None
            assert child.stdout.readline() == "named\n"
            assert Path(f"/proc/{child.pid}/comm").read_text() == comm + "\n"
        yield [child.pid for child in children]
    finally:
        for child in children:
            child.communicate(timeout=10)
