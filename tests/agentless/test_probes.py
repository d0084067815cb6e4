"""What each probe costs on the target: which run with no process, which with one."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

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
from agentless.result import CheckOutcome, CheckState, HostName
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
    assert text.endswith("</dev/null")


def test_text_built_from_inline_is_wrapped_again() -> None:
    text = probe_command(MemoryConfig(), timeout_s=10)
    assert not isinstance("PATH=/x; " + text, Inline)
    assert remote_command("PATH=/x; " + text, timeout=5).startswith("timeout ")


def test_process_of_a_probe_program_lists_the_probe_itself() -> None:
    for name in ("sh", "timeout", "a-name-longer-than-comm"):
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


def test_process_name_with_a_newline_cannot_forge_a_count() -> None:
    """A real process renames itself "x\\n1 (opsfake) S": the listing shows what looks
    like a live 'opsfake' record, but no process of that name runs."""
    code = (
        "import ctypes, sys\n"
        "ctypes.CDLL(None).prctl(15, ctypes.c_char_p(b'x\\n1 (opsfake) S'), 0, 0, 0)\n"
        "print('renamed', flush=True)\n"
        "sys.stdin.read()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "renamed\n"
        comm = Path(f"/proc/{child.pid}/comm").read_text()
        assert comm == "x\n1 (opsfake) S\n", comm
        config = ProcessConfig(name="opsfake")

        async def scenario() -> CheckOutcome:
            command = probe_command(config, timeout_s=10)
            return parse(config, await LocalTransport().run(LOCAL, command, timeout=10))

        outcome = asyncio.run(scenario())
    finally:
        child.communicate(timeout=10)
    assert outcome.state is CheckState.CRITICAL, outcome
    assert outcome.message == "0 processes named 'opsfake' (min 1)"
