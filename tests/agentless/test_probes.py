"""What each probe costs on the target: which run with no process, which with one."""

from __future__ import annotations

import asyncio
import secrets
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
from agentless.checks.probes import probe_command
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
    assert text.count("sed -n") == text.count("/proc/[0-9]*/stat </dev/null") == 2


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


def run_local(config: ProcessConfig, *, path: str | None = None) -> CommandResult:
    """The real probe, run by the local transport."""
    command = probe_command(config, timeout_s=10)
    if path is not None:
        command = f"PATH={path}\n{command}"
    return asyncio.run(LocalTransport().run(LOCAL, command, timeout=10))


def check_local(config: ProcessConfig, *, path: str | None = None) -> CheckOutcome:
    """The real probe's outcome, from the real parser."""
    return parse(config, run_local(config, path=path))


def count(name: str) -> float | None:
    outcome = check_local(ProcessConfig(name=name, min_count=0))
    assert outcome.state is CheckState.OK, outcome
    return outcome.value


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
def test_process_name_is_matched_exactly(name: str, decoys: list[str]) -> None:
    """Regex and shell metacharacters in a name are literal; a prefix, a suffix or one
    more space is another name."""
    t = tag()
    real = name.format(t=t)
    with named(real, *(decoy.format(t=t) for decoy in decoys)) as [pid, *_]:
        result = run_local(ProcessConfig(name=real))
        assert result.stdout.startswith("@proc\n"), result
        assert [line for line in result.stdout.splitlines() if line.isdigit()] == [str(pid)]
        assert count(real) == 1.0
    assert count(real) == 0.0


@pytest.mark.parametrize(
    "forged",
    [
        "x\n1 ({t}) S",  # a record after the process's own first line
        "x\n1 ({t}",  # the process's real fields end the forged record
        "{t}) S 1 2\nz",  # the first line, cut by a newline, looks whole
        "{t}) S 1 2 3 4",  # no newline: the real ")" comes after the forged one
        "\n1 ({t}) S 1 \n",  # a middle line of its own
    ],
)
def test_a_comm_with_a_newline_or_parenthesis_cannot_forge_a_count(forged: str) -> None:
    """A real process renames itself so that the stat listing holds what looks like a
    live record for the name: it counts neither on its own nor next to a real one."""
    t = secrets.token_hex(2)
    with named(forged.format(t=t)):
        assert count(t) == 0.0
        with named(t):
            assert count(t) == 1.0


def test_a_name_with_a_nul_matches_nothing_and_keeps_the_shell_text_whole() -> None:
    """No comm holds a NUL, and shell text cannot carry one."""
    config = ProcessConfig(name="sleep\0x", min_count=0)
    assert "\0" not in probe_command(config, timeout_s=10)
    with named("sleep"):
        outcome = check_local(config)
    assert (outcome.state, outcome.value) == (CheckState.OK, 0.0), outcome


def test_zombies_do_not_count() -> None:
    t = tag()
    with named(t, then="exit") as [zombie], named(t):
        stat = Path(f"/proc/{zombie}/stat")
        for _ in range(200):
            if stat.read_text().startswith(f"{zombie} ({t}) Z "):
                break
            subprocess.run(["sleep", "0.05"], check=True)
        assert stat.read_text().startswith(f"{zombie} ({t}) Z ")
        assert count(t) == 1.0


def test_min_and_max_count_bounds() -> None:
    t = tag()
    with named(t, t):
        outcomes = [
            check_local(ProcessConfig(name=t, min_count=2, max_count=2)),
            check_local(ProcessConfig(name=t, min_count=3)),
            check_local(ProcessConfig(name=t, max_count=1)),
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


def test_process_without_sed_is_unknown() -> None:
    outcome = check_local(ProcessConfig(name="sshd"), path="/nonexistent")
    assert outcome.state is CheckState.UNKNOWN, outcome
    assert outcome.message == "cannot list processes: no sed on host"


STRACE = shutil.which("strace")
SED = shutil.which("sed")

#: A ``sed`` first in PATH that runs the real one, under strace the first time only.
_FAULT_ONCE = """#!/bin/sh
if mkdir "$0.ran" 2>/dev/null; then
  exec {strace} -qq -o /dev/null -P {stat} -e trace={call} -e inject={call}:error={error}:when=1 \\
    {sed} "$@"
fi
exec {sed} "$@"
"""


@pytest.mark.skipif(STRACE is None or SED is None, reason="strace is not installed")
@pytest.mark.parametrize(
    ("call", "error", "counted"),
    [
        # Reaped between sed's open and its read: GNU sed stops (status 4), the probe
        # runs it again, and the second listing (which reads the file) counts.
        ("read", "ESRCH", 2.0),
        # Gone before sed opened it: sed says so and goes on; that process is not there.
        ("openat", "ENOENT", 1.0),
    ],
)
def test_a_process_ending_during_the_listing_does_not_fail_the_check(
    tmp_path: Path, call: str, error: str, counted: float
) -> None:
    """strace makes the kernel fail the first sed's read (or open) of one process's
    stat file, as when that process ends at that moment: the real probe still counts."""
    t = tag()
    config = ProcessConfig(name=t, min_count=1)
    with named(t, t) as [ending, _]:
        wrapper = tmp_path / "sed"
        wrapper.write_text(
            _FAULT_ONCE.format(
                strace=STRACE, sed=SED, stat=f"/proc/{ending}/stat", call=call, error=error
            )
        )
        wrapper.chmod(0o755)
        result = run_local(config, path=f"{tmp_path}:/usr/bin:/bin")
    assert f"/proc/{ending}/stat" in result.stderr, result
    outcome = parse(config, result)
    assert outcome.state is CheckState.OK, outcome
    assert outcome.value == counted, outcome
