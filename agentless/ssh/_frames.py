"""One stream of a kept shell, split at its end marks as it arrives, never held whole.

A batch's stdout is each command's output followed by ``\\nTOKEN:<status>\\n``, its
stderr each command's errors followed by ``\\nTOKEN\\n`` (see
:mod:`agentless.ssh._channel`). :class:`MarkScanner` reads one of the two streams packet
by packet: the bytes before a mark go to that command's :class:`~agentless.output.
OutputSink` (which keeps at most its cap), a mark moves on to the next command's sink.
What it holds between packets is the few bytes that may begin a mark (less than one mark)
and, after a stdout mark, at most three status digits; so a command that floods costs its
sink's cap and nothing else, and its batch-mates' marks are found wherever the packets
cut them.

The token is random per shell (96 bits) and never reaches a command's argv or stdin: a
command that does not know it cannot end its frame early. A compromised host knows it
and can forge marks; that moves output between commands of that host's own batch (whose
results it controls anyway), and a mark that is no mark (a status that is not 1-3 ASCII
digits) is a :class:`FramingError`: the channel is closed. Nothing a host sends can make
the scanner hold more, raise anything else, or touch another host's shell.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentless.output import OutputSink

#: ``$?`` is 0-255: at most three digits after a stdout mark.
_STATUS_DIGITS = 3


class FramingError(Exception):
    """The stream broke the framing: a stdout mark not followed by a status and a newline."""


class MarkScanner:
    """Splits one stream at ``mark``; ``with_status``: a status and a newline follow it.

    :attr:`statuses` holds one entry per mark passed since :meth:`reset` (the status, or
    0 for stderr), at most one per sink; bytes and marks past the last command's mark (or
    while no batch runs) are counted in :attr:`stray` and :attr:`stray_marks`, and
    dropped.
    """

    __slots__ = (
        "_digits",
        "_sinks",
        "_tail",
        "mark",
        "statuses",
        "stray",
        "stray_marks",
        "with_status",
    )

    def __init__(self, mark: bytes, *, with_status: bool) -> None:
        if mark[:1] != b"\n" or b"\n" in mark[1:-1]:
            raise ValueError("a mark starts with its only newline (but for a last one)")
        self.mark = mark
        self.with_status = with_status
        self.statuses: list[int] = []
        self.stray = 0
        self.stray_marks = 0
        self._sinks: Sequence[OutputSink] = ()
        self._tail = b""
        self._digits: bytes | None = None

    def reset(self, sinks: Sequence[OutputSink]) -> None:
        """Start a batch: the bytes before the ``n``-th mark go to ``sinks[n]``."""
        self._sinks = sinks
        self.statuses = []
        self._tail = b""
        self._digits = None

    def feed(self, data: bytes) -> None:
        """Route ``data`` (the stream's next bytes) to the sinks; raises FramingError.

        Runs once per packet for every check, so it is written for the usual packet (a
        few commands' output, each whole mark and status within it): locals, no calls
        but the sink's.
        """
        if self._tail:
            data = self._tail + data
            self._tail = b""
        mark, size, end, pos = self.mark, len(self.mark), len(data), 0
        statuses, sinks = self.statuses, self._sinks
        if self._digits is not None:
            pos = self._status(data, 0)
        while pos < end:
            at = data.find(mark, pos)
            if at < 0:
                # keep what may begin a mark for the next packet: a mark's only newline
                # within any shorter prefix is its first byte
                newline = data.rfind(b"\n", max(pos, end - size + 1))
                keep = end - newline if newline >= 0 and mark.startswith(data[newline:]) else 0
                self._emit(data, pos, end - keep)
                if keep:
                    self._tail = data[end - keep :]
                return
            if at > pos:
                if len(statuses) < len(sinks):
                    sinks[len(statuses)].feed(memoryview(data)[pos:at])
                else:
                    self.stray += at - pos
            pos = at + size
            if not self.with_status:
                if len(statuses) < len(sinks):
                    statuses.append(0)
                else:
                    self.stray_marks += 1
                continue
            newline = data.find(b"\n", pos, pos + _STATUS_DIGITS + 1)
            digits = data[pos:newline] if newline > pos else b""
            if digits.isdigit() and len(statuses) < len(sinks):  # the usual case
                statuses.append(int(digits))
                pos = newline + 1
            else:
                self._digits = b""
                pos = self._status(data, pos)

    def _status(self, data: bytes, pos: int) -> int:
        """Read the status after a stdout mark; the position after it (or the end)."""
        assert self._digits is not None
        stop = min(len(data), pos + _STATUS_DIGITS + 1 - len(self._digits))
        newline = data.find(b"\n", pos, stop)
        digits = self._digits + data[pos : stop if newline < 0 else newline]
        if newline < 0:
            if len(digits) > _STATUS_DIGITS:
                raise FramingError("an end mark without a status")
            self._digits = digits
            return stop
        if not (digits.isdigit() and len(digits) <= _STATUS_DIGITS):  # ASCII digits only
            raise FramingError("an end mark with no valid status")
        self._digits = None
        self._mark(int(digits))
        return newline + 1

    def _mark(self, status: int) -> None:
        """A mark passed: the next sink's turn. Marks past the last sink (forged, or while
        no batch runs) are not kept: a host that sends nothing but marks holds nothing."""
        if len(self.statuses) < len(self._sinks):
            self.statuses.append(status)
        else:
            self.stray_marks += 1

    def _emit(self, data: bytes, start: int, stop: int) -> None:
        if stop <= start:
            return
        index = len(self.statuses)
        if index < len(self._sinks):
            whole = start == 0 and stop == len(data)
            self._sinks[index].feed(data if whole else memoryview(data)[start:stop])
        else:
            self.stray += stop - start
