"""What each probe costs on the target: which run with no process, which with one."""

from __future__ import annotations

import asyncio
import secrets
import shlex
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from named_processes import named

from agentless.checks.config import (
    CommandConfig,
    CpuConfig,
    DiskSpaceConfig,
    MemoryConfig,
    ProcessConfig,
    TcpConfig,
)
from agentless.checks.parsers import parse
from agentless.checks.probes import PROCESS_FILTER_MIN, probe_command, process_command
from agentless.inventory import Host
from agentless.local import LocalTransport
from agentless.result import CheckOutcome, CheckState, CommandResult, HostName
from agentless.transport import Inline, remote_command

LOCAL = Host(name=HostName("localhost"), address="localhost", transport="local")


def test_memory_and_tcp_are_inline_and_are_not_wrapped() -> None:
    for config in (MemoryConfig(), TcpConfig(port=22), TcpConfig(port=22, host="10.0.0.1")):
        command = probe_command(config, timeout_s=10)
        assert isinstance(command, Inline), config
        assert remote_command(command, timeout=10).startswith("{ ")


def test_programs_run_under_timeout_without_a_shell() -> None:
    plain = probe_command(CommandConfig(command="/usr/lib/nagios/check_x -w 1"), timeout_s=10)
    wrapped = remote_command(plain, timeout=10)
    assert wrapped.startswith("timeout -k 1 10.000 ")
    assert "/bin/sh" not in wrapped, wrapped


def test_the_disk_probe_runs_df_under_its_own_timeout_in_the_c_locale() -> None:
    text = probe_command(DiskSpaceConfig(path="/var/lib/my data"), timeout_s=10)
    assert isinstance(text, Inline)
    assert text.startswith("LC_ALL=C timeout -k 1 ")
    assert "df -P -k -- '/var/lib/my data' </dev/null" in text


def test_a_program_reading_only_proc_runs_unwrapped() -> None:
    """/proc reads cannot block, so the process probe needs no `timeout` process."""
    text = probe_command(ProcessConfig(name="sshd"), timeout_s=10)
    assert isinstance(text, Inline)
    assert "timeout" not in remote_command(text, timeout=10)
    assert text.startswith("opsmap_ps() {\n")
    assert text.endswith("\nopsmap_ps /proc/[0-9]*/stat")
    assert text.count('LC_ALL=C head -v -c 32 -- "$@" </dev/null') == 2
    assert text.count(" | LC_ALL=C sed -n '") == 1


def test_the_listing_leaves_the_kept_shells_positional_parameters_alone() -> None:
    """The frame runs in the kept shell: the stat files are the function's arguments, and
    the shell's own are the same after it, for the commands that follow."""
    for least in (0, 1 << 30):
        text = process_command(ProcessConfig(name="sshd"), filter_min=least)
        frame = f'set -- a "b c"; {remote_command(text, timeout=10)}; echo; echo "@after $# $2"'
        done = subprocess.run(
            ["sh", "-c", frame], capture_output=True, text=True, check=False, timeout=30
        )
        assert done.stdout.endswith("\n@after 2 b c\n"), done


def test_text_built_from_inline_is_wrapped_again() -> None:
    text = probe_command(MemoryConfig(), timeout_s=10)
    assert not isinstance("PATH=/x; " + text, Inline)
    assert remote_command("PATH=/x; " + text, timeout=5).startswith("timeout ")


def test_process_of_a_probe_program_lists_the_probe_itself() -> None:
    for name in ("sh", "sed", "timeout", "a-name-longer-than-comm"):
        assert probe_command(ProcessConfig(name=name), timeout_s=10).startswith('echo "@self')


def _local(config: TcpConfig | CpuConfig, *, path: str | None = None) -> CheckState:
    command = probe_command(config, timeout_s=10)
    if path is not None:
        command = f"PATH={path}\n{command}"

    async def scenario() -> CheckState:
        result = await LocalTransport().run(LOCAL, command, timeout=10)
        return parse(config, result).state

    return asyncio.run(scenario())


def test_tcp_without_any_program_reads_proc_with_builtins() -> None:
    """A connect check with no bash, no nc, no coreutils at all: the loopback answer
    comes from /proc alone, read by the shell's builtins."""
    for family, address, host in (
        (socket.AF_INET, "127.0.0.1", "127.0.0.1"),
        (socket.AF_INET6, "::1", "::1"),
    ):
        sock = socket.socket(family)
        try:
            sock.bind((address, 0))
        except OSError:  # no IPv6 on this machine
            sock.close()
            continue
        sock.listen()
        config = TcpConfig(port=sock.getsockname()[1], host=host, method="connect")
        try:
            assert _local(config, path="/nonexistent") is CheckState.OK, host
        finally:
            sock.close()
        assert _local(config, path="/nonexistent") is CheckState.CRITICAL, host


def test_cpu_reads_proc_stat_with_builtins() -> None:
    config = CpuConfig(warning_percent=99.8, critical_percent=99.9, sample_secs=0.2)
    assert _local(config) in (CheckState.OK, CheckState.WARNING, CheckState.CRITICAL)


def test_tcp_socket_table_without_sed_asks_for_connect() -> None:
    config = TcpConfig(port=22)
    command = f"PATH=/nonexistent\n{probe_command(config, timeout_s=10)}"

    async def scenario() -> CheckOutcome:
        return parse(config, await LocalTransport().run(LOCAL, command, timeout=10))

    outcome = asyncio.run(scenario())
    assert outcome.state is CheckState.UNKNOWN, outcome
    assert outcome.message == (
        "cannot read the socket table for 127.0.0.1:22: no sed on host "
        "(method: connect connects instead)"
    )


def run_local(
    config: ProcessConfig, *, path: str | None = None, least: int | None = None
) -> CommandResult:
    """The real probe, run by the local transport (``least``: its ``filter_min``)."""
    command = process_command(config, filter_min=least)
    if path is not None:
        command = f"PATH={path}\n{command}"
    return asyncio.run(LocalTransport().run(LOCAL, command, timeout=10))


def check_local(
    config: ProcessConfig, *, path: str | None = None, least: int | None = None
) -> CheckOutcome:
    """The real probe's outcome, from the real parser."""
    return parse(config, run_local(config, path=path, least=least))


def count(name: str, least: int | None = None) -> float | None:
    outcome = check_local(ProcessConfig(name=name, min_count=0), least=least)
    assert outcome.state is CheckState.OK, outcome
    return outcome.value


#: ``filter_min`` for each listing: 0 filters on the host whatever the count, 2**30 never.
FILTERED, ALL = 0, 1 << 30


@pytest.fixture(params=[FILTERED, ALL], ids=["filtered", "all"])
def least(request: pytest.FixtureRequest) -> int:
    """Each real-process test runs both listings."""
    return int(request.param)


def _stat_files() -> int:
    return sum(1 for entry in Path("/proc").iterdir() if entry.name.isdigit())


def test_the_path_follows_the_number_of_processes() -> None:
    """The host counts its stat files: below the threshold they are listed whole, at or
    above it the host filters (its first line says which ran), on this machine's own
    count and on thresholds either side of it."""
    above = _stat_files() + 1000
    first = {
        least: run_local(ProcessConfig(name="sshd", min_count=0), least=least).stdout
        for least in (None, 1, above)
    }
    assert first[1].startswith("@filtered\n@proc\n"), first[1][:200]
    assert first[above].startswith("@all\n==> /proc/"), first[above][:200]
    processes = _stat_files()
    if abs(processes - PROCESS_FILTER_MIN) < 200:
        pytest.skip(f"{processes} processes: too near the threshold to say which runs")
    path = "@all\n==> /proc/" if processes < PROCESS_FILTER_MIN else "@filtered\n@proc\n"
    assert first[None].startswith(path), (processes, first[None][:200])


def tag() -> str:
    """A short prefix no other process on this machine has."""
    return secrets.token_hex(3)


@pytest.mark.parametrize(
    ("name", "decoys"),
    [
        ("{t}.b", ["{t}xb"]),
        ("{t}x*", ["{t}", "{t}xx"]),
        ("{t}[y]", ["{t}y"]),
        ("{t}/b", []),
        ("{t}\\b", ["{t}b", "{t}\\\\b"]),
        ("^{t}$", ["{t}"]),
        ("{t} srv", ["{t}  srv", "{t}"]),
        ("{t}'q\"", ["{t}q"]),
        ("({t})", ["{t}", "({t}"]),
        ("{t}", ["{t}x", "x{t}", "{t} "]),
    ],
)
def test_process_name_is_matched_exactly(name: str, decoys: list[str], least: int) -> None:
    """Regex and shell metacharacters in a name are literal; a prefix, a suffix or one
    more space is another name."""
    t = tag()
    real = name.format(t=t)
    with named(real, *(decoy.format(t=t) for decoy in decoys)) as [pid, *_]:
        result = run_local(ProcessConfig(name=real), least=least)
        if least == FILTERED:
            assert result.stdout.startswith("@filtered\n@proc\n"), result
            assert [line for line in result.stdout.splitlines() if line.isdigit()] == [str(pid)]
        else:
            assert result.stdout.startswith("@all\n==> /proc/"), result
            assert f"==> /proc/{pid}/stat <==\n{pid} ({real}) S " in result.stdout
        assert count(real, least) == 1.0
    assert count(real, least) == 0.0


@pytest.mark.parametrize(
    "forged",
    [
        "x\n1 ({t}) S",  # a record after the process's own first line
        "x\n1 ({t}",  # the process's real fields end the forged record
        "{t}) S 1 2\nz",  # the first line, cut by a newline, looks whole
        "{t}) S 1\n",  # the same, ending in the newline
        "{t}) S 1 2 3 4",  # no newline: the real ")" comes after the forged one
        "{t}) R 123456",  # the same, a full 15-byte comm
        "\n1 ({t}) S 1 \n",  # a middle line of its own
        "\n==> /proc/1/st",  # the start of a header after its own first line
    ],
)
def test_a_comm_with_a_newline_or_parenthesis_cannot_forge_a_count(forged: str, least: int) -> None:
    """A real process renames itself so that the stat listing holds what looks like a
    live record for the name: it counts neither on its own nor next to a real one."""
    t = secrets.token_hex(2)
    with named(forged.format(t=t)):
        assert count(t, least) == 0.0
        with named(t):
            assert count(t, least) == 1.0


def test_a_name_with_a_nul_matches_nothing_and_keeps_the_shell_text_whole(least: int) -> None:
    """No comm holds a NUL, and shell text cannot carry one."""
    config = ProcessConfig(name="sleep\0x", min_count=0)
    assert "\0" not in probe_command(config, timeout_s=10)
    with named("sleep"):
        outcome = check_local(config, least=least)
    assert (outcome.state, outcome.value) == (CheckState.OK, 0.0), outcome


def test_zombies_do_not_count(least: int) -> None:
    t = tag()
    with named(t, then="exit") as [zombie], named(t):
        stat = Path(f"/proc/{zombie}/stat")
        for _ in range(200):
            if stat.read_text().startswith(f"{zombie} ({t}) Z "):
                break
            subprocess.run(["sleep", "0.05"], check=True)
        assert stat.read_text().startswith(f"{zombie} ({t}) Z ")
        assert count(t, least) == 1.0


def test_min_and_max_count_bounds(least: int) -> None:
    t = tag()
    with named(t, t):
        outcomes = [
            check_local(ProcessConfig(name=t, min_count=2, max_count=2), least=least),
            check_local(ProcessConfig(name=t, min_count=3), least=least),
            check_local(ProcessConfig(name=t, max_count=1), least=least),
        ]
    assert [o.state for o in outcomes] == [CheckState.OK, CheckState.CRITICAL, CheckState.CRITICAL]
    assert outcomes[1].message == f"2 processes named {t!r} (min 3)"
    assert outcomes[2].message == f"2 processes named {t!r} (min 1, max 1)"


def test_a_check_for_sed_does_not_count_the_probe() -> None:
    """The probe runs sed: a check for "sed" takes the listing path that excludes it."""
    before = count("sed")
    assert before is not None
    sed = subprocess.Popen(["sed", "p"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        assert count("sed") == before + 1
    finally:
        sed.communicate(timeout=10)


def _only(tmp_path: Path, *programs: str) -> str:
    """A PATH with only ``programs`` (the real ones) in it."""
    for program in programs:
        real = shutil.which(program)
        assert real is not None, program
        (tmp_path / program).symlink_to(real)
    return str(tmp_path)


@pytest.mark.parametrize(("present", "missing"), [("head", "sed"), ("sed", "head")])
def test_process_without_sed_or_head_is_unknown(tmp_path: Path, present: str, missing: str) -> None:
    """The filtered listing needs both."""
    path = _only(tmp_path, present)
    outcome = check_local(ProcessConfig(name="sshd"), path=path, least=FILTERED)
    assert outcome.state is CheckState.UNKNOWN, outcome
    assert outcome.message == f"cannot list processes: no {missing} on host"


def test_the_whole_listing_needs_head_and_not_sed(tmp_path: Path) -> None:
    t = tag()
    with named(t):
        counted = check_local(ProcessConfig(name=t), path=_only(tmp_path, "head"), least=ALL)
    assert (counted.state, counted.value) == (CheckState.OK, 1.0), counted
    outcome = check_local(ProcessConfig(name=t), path=str(tmp_path / "none"), least=ALL)
    assert outcome.state is CheckState.UNKNOWN, outcome
    assert outcome.message.startswith("listing /proc failed: "), outcome
    assert "head: not found" in outcome.message, outcome


def test_a_listing_without_any_stat_file_is_unknown(tmp_path: Path, least: int) -> None:
    """As with no /proc mounted: a real head whose glob matched nothing prints no header,
    and no header is no listing, not "0 processes"."""
    real = shutil.which("head")
    _only(tmp_path, "sed")
    (tmp_path / "head").write_text(
        f"#!/bin/sh\nexec {real} -v -c 32 -- /nonexistent/proc/[0-9]*/stat </dev/null\n"
    )
    (tmp_path / "head").chmod(0o755)
    outcome = check_local(ProcessConfig(name="sshd", min_count=0), path=str(tmp_path), least=least)
    assert outcome.state is CheckState.UNKNOWN, outcome
    assert outcome.message.startswith("listing /proc failed: "), outcome
    assert "cannot open '/nonexistent/proc/[0-9]*/stat'" in outcome.message, outcome


STRACE = shutil.which("strace")
HEAD = shutil.which("head")

#: A ``head`` first in PATH that runs the real one under strace, failing one call on one file.
_FAULT = """#!/bin/sh
exec {strace} -qq -o /dev/null -P {stat} -e trace={call} -e inject={call}:error={error}:when=1 \\
  {head} "$@"
"""


@pytest.mark.skipif(STRACE is None or HEAD is None, reason="strace is not installed")
@pytest.mark.parametrize(
    ("call", "error"),
    [
        ("read", "ESRCH"),  # reaped between head's open and its read
        ("openat", "ENOENT"),  # gone before head opened it
    ],
)
def test_a_process_ending_during_the_listing_does_not_fail_the_check(
    tmp_path: Path, call: str, error: str, least: int
) -> None:
    """strace makes the kernel fail head's read (or open) of one process's stat file, as
    when that process ends at that moment: head says so, exits 1 and lists the others,
    and the real probe counts them."""
    t = tag()
    config = ProcessConfig(name=t, min_count=1)
    with named(t, t) as [ending, other]:
        wrapper = tmp_path / "head"
        wrapper.write_text(
            _FAULT.format(
                strace=STRACE, head=HEAD, stat=f"/proc/{ending}/stat", call=call, error=error
            )
        )
        wrapper.chmod(0o755)
        result = run_local(config, path=f"{tmp_path}:/usr/bin:/bin", least=least)
    assert f"/proc/{ending}/stat" in result.stderr, result
    if least == FILTERED:
        assert result.stdout.endswith(f"\n{other}\n@head 1\n"), result
    else:
        assert result.exit_status == 1, result
        assert f"==> /proc/{other}/stat <==\n{other} ({t}) S " in result.stdout, result
    outcome = parse(config, result)
    assert (outcome.state, outcome.value) == (CheckState.OK, 1.0), outcome


#: The seds the filter is run by: GNU's, and busybox's where it is installed.
SEDS = [["sed"]] + ([[BUSYBOX, "sed"]] if (BUSYBOX := shutil.which("busybox")) else [])


def _stream(
    name: str,
    *,
    header: str | None = "5",
    pid: str = "5",
    state: str = "S",
    size: int = 32,
    gap: str = "",
) -> str:
    """head's listing of one stat file, ``size`` bytes of a record after its header."""
    record = f"{pid} ({name}) {state} " + "1 6 6 0 -1 4194560 0 0 0 0 0 0 0 0 0 0"
    return ("" if header is None else f"==> /proc/{header}/stat <==\n") + gap + record[:size]


@pytest.mark.parametrize(
    "changes",
    [
        {"pid": "6"},  # another pid than the header's
        {"size": 33},  # more than head's 32 bytes
        {"size": 31},  # fewer: cut by a newline
        {"state": "Z"},  # a zombie
        {"gap": "\n"},  # not the first line after the header
        {"header": None},  # no header
    ],
)
@pytest.mark.parametrize("sed", SEDS)
def test_the_filter_counts_only_a_headed_whole_record(
    sed: list[str], changes: dict[str, str]
) -> None:
    """The sed script itself (GNU's and busybox's), on streams no head prints, each
    breaking one guard (a whole record of head's 32 bytes counts); the stream's last
    line is its status."""
    t = tag()
    probe = process_command(ProcessConfig(name=t), filter_min=FILTERED)
    script = probe.split(" | LC_ALL=C sed -n ")[1]
    script = shlex.split(script.split(" || ")[0])[0]
    for text, printed in ((_stream(t), "5\n"), (_stream(t, **changes), "")):  # type: ignore[arg-type]
        filtered = subprocess.run(
            [*sed, "-n", script],
            input=f"{text}\n@head 0\n",
            capture_output=True,
            text=True,
            check=True,
            env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"},
        )
        out = filtered.stdout
        assert out.removeprefix("@proc\n") == f"{printed}@head 0\n", (sed, text, out)
