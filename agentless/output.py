"""A command's output, bounded while it is read: kept up to a cap, counted and hashed whole.

A target host answers with any bytes, any size: a check that prints 300 MB must cost the
reconciler the cap, not 300 MB. Every transport reads each stream of a command into an
:class:`OutputSink` as it arrives: the first ``cap`` bytes are kept, every byte is counted
and fed to a streaming sha256, and the rest is dropped at once. The result then says how
much was dropped (:attr:`~agentless.result.CommandResult.stdout_dropped`…) and carries the
digests of everything the host sent, so an audit record can be honest about what it did
not keep.

The cap is the operator's (``opsmap run --max-output``), per stream and per command:
:data:`DEFAULT_MAX_OUTPUT` unless told otherwise.
"""

from __future__ import annotations

import codecs
import hashlib

#: Bytes kept of each stream (stdout, stderr) of one command, unless the operator says.
DEFAULT_MAX_OUTPUT = 64 * 1024
#: The smallest cap an operator may set: below it a probe's own answer might not fit
#: (the engine itself takes any cap from 1 byte, which tests use).
MIN_MAX_OUTPUT = 4 * 1024
#: The largest cap accepted (per stream, per command in flight: 256 commands at 64 MiB
#: would already be 32 GiB).
MAX_MAX_OUTPUT = 64 * 1024 * 1024


def check_max_output(cap: int) -> int:
    """``cap`` if it is a cap this package accepts, else :class:`ValueError`."""
    if not 1 <= cap <= MAX_MAX_OUTPUT:
        raise ValueError(f"the output cap must be between 1 and {MAX_MAX_OUTPUT} bytes")
    return cap


class OutputSink:
    """One stream of one command: its first ``cap`` bytes kept, every byte counted, the
    rest never stored.

    The sha256 of the whole stream is taken as the bytes arrive once the cap is passed
    (from the kept bytes, then each packet); below the cap it is taken only when asked
    (:meth:`sha256`), so a check, which never asks, does not pay for hashing its output.
    """

    __slots__ = ("_hash", "cap", "kept", "total")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.kept = bytearray()
        self.total = 0
        self._hash: hashlib._Hash | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        size = len(data)
        self.total += size
        room = self.cap - len(self.kept)
        if size <= room:
            self.kept += data
            return
        if self._hash is None:  # the cap is passed: hash from here on, as bytes arrive
            self._hash = hashlib.sha256(self.kept)
        self._hash.update(data)
        if room > 0:
            self.kept += memoryview(data)[:room]

    @property
    def dropped(self) -> int:
        """Bytes received and not kept."""
        return self.total - len(self.kept)

    def text(self) -> str:
        """What was kept, decoded as UTF-8 (invalid bytes replaced; a character the cap
        cut in two is dropped)."""
        if self.total != len(self.kept):  # an incomplete sequence at the cut is left undecoded
            return codecs.getincrementaldecoder("utf-8")("replace").decode(self.kept)
        return self.kept.decode("utf-8", "replace")

    def sha256(self) -> str:
        """sha256 (hex) of every byte received, kept or not."""
        whole = self._hash if self._hash is not None else hashlib.sha256(self.kept)
        return whole.hexdigest()
