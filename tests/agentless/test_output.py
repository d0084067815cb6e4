"""Output bounded while it is read: the sink (cap, count, digest) and the mark scanner that
splits a kept shell's streams, fed any bytes cut at any points (hypothesis)."""

from __future__ import annotations

import asyncio
import codecs
import hashlib
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentless.checks.config import CommandConfig
from agentless.inventory import Host
from agentless.output import OutputSink, check_max_output
from agentless.result import CheckState, CommandResult, HostName
from agentless.runner import CheckTarget, run_check
from agentless.ssh._frames import FramingError, MarkScanner
from agentless.testing import FakeTransport, reply

TOKEN = b"OPSMAP-0123456789abcdef01234567"
OUT_MARK = b"\n" + TOKEN + b":"
ERR_MARK = b"\n" + TOKEN + b"\n"

#: Bytes that look like marks to a command that does not know the token: the start of
#: the real one (all but its token's last characters), another token's, bare digits.
LOOKALIKES = st.sampled_from(
    [
        b"\n",
        b"\nOPSMAP-",
        b"\n" + TOKEN[:-1],
        b"\n" + TOKEN[:-3],
        b"\n" + TOKEN[:-1] + b"8:0\n",
        b"\nOPSMAP-ffffffffffffffffffffffff:0\n",
        b"\nOPSMAP-ffffffffffffffffffffffff\n",
        b":0\n",
        b"0\n",
    ]
)
#: Output a command that does not know the token may print: any bytes, lookalikes mixed in
#: (but not the token itself, which such a command cannot know).
OUTPUT = (
    st.lists(st.one_of(st.binary(max_size=64), LOOKALIKES), max_size=12)
    .map(b"".join)
    .filter(lambda data: TOKEN not in data)
)


def kept_text(data: bytes, cap: int) -> str:
    if len(data) > cap:
        return codecs.getincrementaldecoder("utf-8")("replace").decode(data[:cap])
    return data.decode("utf-8", "replace")


def cut(stream: bytes, points: list[int]) -> list[bytes]:
    """``stream`` in pieces, cut at ``points`` (any offsets, sorted and deduplicated)."""
    edges = sorted({p % (len(stream) + 1) for p in points} | {0, len(stream)})
    return [stream[a:b] for a, b in itertools.pairwise(edges)]


@given(
    data=st.lists(st.binary(max_size=200), max_size=8),
    cap=st.integers(min_value=1, max_value=300),
)
def test_a_sink_keeps_the_cap_counts_and_hashes_every_byte(data: list[bytes], cap: int) -> None:
    sink = OutputSink(cap)
    for chunk in data:
        sink.feed(memoryview(chunk))
    whole = b"".join(data)
    assert bytes(sink.kept) == whole[:cap]
    assert (sink.total, sink.dropped) == (len(whole), max(len(whole) - cap, 0))
    assert sink.sha256() == hashlib.sha256(whole).hexdigest()
    assert sink.text() == kept_text(whole, cap)


def test_a_character_cut_by_the_cap_is_dropped_not_replaced() -> None:
    sink = OutputSink(5)
    sink.feed("abcdé…".encode())
    assert sink.text() == "abcd"
    assert OutputSink(5).text() == ""


@pytest.mark.parametrize("cap", [0, -1, 64 * 1024 * 1024 + 1])
def test_a_cap_out_of_bounds_is_refused(cap: int) -> None:
    with pytest.raises(ValueError, match="output cap"):
        check_max_output(cap)


@settings(max_examples=400, deadline=None)
@given(
    commands=st.lists(st.tuples(OUTPUT, OUTPUT, st.integers(0, 255)), min_size=1, max_size=5),
    cap=st.integers(min_value=1, max_value=200),
    out_cuts=st.lists(st.integers(min_value=0), max_size=20),
    err_cuts=st.lists(st.integers(min_value=0), max_size=20),
    stray=st.binary(max_size=50),
)
def test_marks_split_any_output_cut_anywhere(
    commands: list[tuple[bytes, bytes, int]],
    cap: int,
    out_cuts: list[int],
    err_cuts: list[int],
    stray: bytes,
) -> None:
    """Each command gets exactly its own bytes (the first ``cap`` kept, all counted and
    hashed) and status, whatever lookalike marks it printed and wherever packets cut."""
    out = MarkScanner(OUT_MARK, with_status=True)
    err = MarkScanner(ERR_MARK, with_status=False)
    sinks = [(OutputSink(cap), OutputSink(cap)) for _ in commands]
    out.reset([o for o, _ in sinks])
    err.reset([e for _, e in sinks])
    stdout = b"".join(o + OUT_MARK + b"%d\n" % status for o, _, status in commands) + stray
    stderr = b"".join(e + ERR_MARK for _, e, _ in commands) + stray
    for piece in cut(stdout, out_cuts):
        out.feed(piece)
    for piece in cut(stderr, err_cuts):
        err.feed(piece)
    assert out.statuses == [status for _, _, status in commands]
    assert len(err.statuses) == len(commands)
    for (o, e, _), (o_sink, e_sink) in zip(commands, sinks, strict=True):
        for data, sink in ((o, o_sink), (e, e_sink)):
            assert bytes(sink.kept) == data[:cap]
            assert sink.total == len(data)
            assert sink.sha256() == hashlib.sha256(data).hexdigest()
    # what follows the last mark is no command's, and nothing past one mark is held
    assert out.stray + len(out._tail) <= len(stray)
    assert len(out._tail) < len(OUT_MARK)


@settings(max_examples=300, deadline=None)
@given(
    stream=st.lists(
        st.one_of(st.binary(max_size=80), LOOKALIKES, st.just(OUT_MARK), st.just(ERR_MARK)),
        max_size=30,
    ).map(b"".join),
    cuts=st.lists(st.integers(min_value=0), max_size=30),
    with_status=st.booleans(),
)
def test_a_host_that_forges_marks_moves_bytes_or_breaks_the_framing_and_no_more(
    stream: bytes, cuts: list[int], with_status: bool
) -> None:
    """A host that knows the token: bytes go to some sink or are counted stray, never
    more than the cap kept, never more than a mark held; a bad status is FramingError."""
    scanner = MarkScanner(OUT_MARK if with_status else ERR_MARK, with_status=with_status)
    sinks = [OutputSink(16) for _ in range(3)]
    scanner.reset(sinks)
    try:
        for piece in cut(stream, cuts):
            scanner.feed(piece)
    except FramingError:
        return
    assert all(len(sink.kept) <= 16 for sink in sinks)
    assert len(scanner._tail) < len(scanner.mark)
    assert all(0 <= status <= 999 for status in scanner.statuses)
    assert len(scanner.statuses) <= len(sinks)
    counted = sum(sink.total for sink in sinks) + scanner.stray + len(scanner._tail)
    assert counted <= len(stream)


def test_marks_with_no_command_to_end_are_counted_not_kept() -> None:
    """An idle shell (no sinks) fed nothing but marks holds nothing."""
    scanner = MarkScanner(OUT_MARK, with_status=True)
    scanner.reset(())
    for _ in range(1000):
        scanner.feed(OUT_MARK + b"0\n" + b"x" * 10)
    assert (scanner.statuses, scanner.stray_marks, scanner.stray) == ([], 1000, 10_000)


@pytest.mark.parametrize(
    "status", [b"x\n", b"\n", b"1234\n", b"-1\n", "²\n".encode(), b"12" + b"3" * 5000]
)
def test_a_mark_without_a_status_breaks_the_framing(status: bytes) -> None:
    """Fed a byte at a time: the digits are bounded however the packets cut them."""
    scanner = MarkScanner(OUT_MARK, with_status=True)
    scanner.reset([OutputSink(10)])
    stream = OUT_MARK + status

    def feed_bytes() -> None:
        for at in range(len(stream)):
            scanner.feed(stream[at : at + 1])

    with pytest.raises(FramingError):
        feed_bytes()


def test_a_check_over_the_cap_is_unknown_and_says_how_much_came() -> None:
    """Its parser never sees a cut answer; its exit status is not believed either."""
    host = Host(name=HostName("h"), address="127.0.0.1")

    async def flood(h: Host, command: str, limit: float) -> CommandResult:
        out, err = OutputSink(4096), OutputSink(4096)
        out.feed(b"x" * 100_000)
        err.feed(b"fine\n")
        return CommandResult.of(h.name, command, 0, out, err, 0.1)

    async def small(h: Host, command: str, limit: float) -> CommandResult:
        return reply(h, command, stdout="ok\n")

    target = CheckTarget("m/c/k", host, "command", CommandConfig(command="x"), 5.0)
    run = asyncio.run(run_check(target, transport=FakeTransport(flood)))
    assert run.outcome.state is CheckState.UNKNOWN
    assert run.outcome.message == (
        "output over 4096 bytes (stdout 100000 bytes; the rest was dropped)"
    )
    fine = asyncio.run(run_check(target, transport=FakeTransport(small)))
    assert fine.outcome.state is CheckState.OK
