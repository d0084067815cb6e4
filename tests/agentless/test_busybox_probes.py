"""The probes on a busybox host (Alpine and other small images): busybox's ``sh``,
``sed``, ``head``, ``cut``, ``df`` and ``timeout`` instead of dash and coreutils.

Each probe runs for real under ``busybox sh`` with a PATH that holds only busybox's
applets, and its output goes through the same parser as over SSH.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from named_processes import named

from agentless.checks.config import (
    CommandConfig,
    CpuConfig,
    DiskSpaceConfig,
    MemoryConfig,
    ProbeConfig,
    ProcessConfig,
    TcpConfig,
)
from agentless.checks.parsers import parse
from agentless.checks.probes import probe_command, process_command
from agentless.result import CheckOutcome, CheckState, CommandResult, HostName
from agentless.transport import is_remote_timeout, remote_command

BUSYBOX = shutil.which("busybox")
APPLETS = ("sh", "sed", "head", "cut", "df", "timeout", "sleep", "cat")

pytestmark = pytest.mark.skipif(BUSYBOX is None, reason="busybox is not installed")


@pytest.fixture(scope="module")
def applets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert BUSYBOX is not None
    bin_dir = tmp_path_factory.mktemp("busybox-bin")
    for applet in APPLETS:
        (bin_dir / applet).symlink_to(BUSYBOX)
    return bin_dir


def run_busybox(applets: Path, command: str) -> CommandResult:
    started = time.monotonic()
    proc = subprocess.run(
        [str(applets / "sh"), "-c", command],
        capture_output=True,
        text=True,
        env={"PATH": str(applets)},
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=False,
    )
    duration = time.monotonic() - started
    return CommandResult(
        HostName("busybox"), command, proc.returncode, proc.stdout, proc.stderr, duration
    )


def check(applets: Path, config: ProbeConfig) -> CheckOutcome:
    return parse(config, run_busybox(applets, probe_command(config, timeout_s=10)))


@pytest.fixture
def listening_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def test_tcp_socket_table_with_busybox_sed(applets: Path, listening_port: int) -> None:
    up = check(applets, TcpConfig(port=listening_port))
    assert up.state is CheckState.OK, up
    assert up.message == f"127.0.0.1:{listening_port} is listening"
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()
    down = check(applets, TcpConfig(port=closed_port, host="localhost"))
    assert down.state is CheckState.CRITICAL, down


#: ``filter_min`` for each listing: 0 filters on the host whatever the count, 2**30 never.
FILTERED, ALL = 0, 1 << 30


@pytest.fixture(params=[FILTERED, ALL], ids=["filtered", "all"])
def least(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def check_process(applets: Path, config: ProcessConfig, least: int) -> CheckOutcome:
    return parse(config, run_busybox(applets, process_command(config, filter_min=least)))


def test_process_count_with_busybox_head(applets: Path) -> None:
    """On this machine's few processes the probe lists them whole (its first line)."""
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        listing = run_busybox(applets, probe_command(ProcessConfig(name="sleep"), timeout_s=10))
        running = check(applets, ProcessConfig(name="sleep"))
        missing = check(applets, ProcessConfig(name="no-such-daemon"))
        filtered = check_process(applets, ProcessConfig(name="sleep"), FILTERED)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert listing.stdout.startswith("@all\n==> /proc/"), listing
    assert running.state is CheckState.OK, running
    assert running.value is not None
    assert running.value >= 1
    assert missing.state is CheckState.CRITICAL, missing
    assert (filtered.state, filtered.value) == (running.state, running.value), filtered


def test_process_name_is_matched_exactly_by_busybox_sed(applets: Path, least: int) -> None:
    """busybox's regex (or, listed whole, the client) reads the name literally too, and
    the stat lines that a comm with a newline forges do not count there either."""
    t = secrets.token_hex(2)
    real = f"{t}.*[a]\\/b"
    forged = [f"x\n1 ({t}", f"{t}) S 1 2\nz", f"{t}) S 1 2 3 4", f"\n1 ({t}) S 1 \n"]
    with named(real, f"{t}x[a]\\/b", f"{t}.*a/b", *forged) as [pid, *_]:
        result = run_busybox(applets, process_command(ProcessConfig(name=real), filter_min=least))
        if least == FILTERED:
            assert result.stdout.startswith("@filtered\n@proc\n"), result
            assert [line for line in result.stdout.splitlines() if line.isdigit()] == [str(pid)]
        else:
            assert result.stdout.startswith("@all\n==> /proc/"), result
        assert check_process(applets, ProcessConfig(name=real), least).value == 1.0
        assert check_process(applets, ProcessConfig(name=t, min_count=0), least).value == 0.0
        with named(t):
            assert check_process(applets, ProcessConfig(name=t), least).value == 1.0


@pytest.mark.parametrize("missing", ["sed", "head"])
def test_process_without_sed_or_head_is_unknown(tmp_path: Path, missing: str) -> None:
    """The filtered listing needs both; the whole one needs head, not sed."""
    assert BUSYBOX is not None
    for applet in APPLETS:
        if applet != missing:
            (tmp_path / applet).symlink_to(BUSYBOX)
    config = ProcessConfig(name="sleep", min_count=0)
    outcome = check_process(tmp_path, config, FILTERED)
    assert outcome.state is CheckState.UNKNOWN, outcome
    assert outcome.message == f"cannot list processes: no {missing} on host"
    whole = check_process(tmp_path, config, ALL)
    if missing == "sed":
        assert whole.state is CheckState.OK, whole
    else:
        assert whole.state is CheckState.UNKNOWN, whole
        assert whole.message.startswith("listing /proc failed: "), whole
        assert "head: not found" in whole.message, whole


STRACE = shutil.which("strace")


@pytest.mark.skipif(STRACE is None, reason="strace is not installed")
@pytest.mark.parametrize(("call", "error"), [("read", "ESRCH"), ("openat", "ENOENT")])
def test_a_process_ending_during_busybox_heads_listing(
    applets: Path, tmp_path: Path, call: str, error: str, least: int
) -> None:
    """busybox's head, failed by strace on one stat file (as when that process ends),
    says so, goes on and exits 1: the others count."""
    t = secrets.token_hex(3)
    config = ProcessConfig(name=t)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for applet in APPLETS:
        if applet != "head":
            (bin_dir / applet).symlink_to(applets / applet)
    with named(t, t) as [ending, other]:
        (bin_dir / "head").write_text(
            f"#!{applets / 'sh'}\n"
            f"exec {STRACE} -qq -o /dev/null -P /proc/{ending}/stat -e trace={call} "
            f'-e inject={call}:error={error}:when=1 {BUSYBOX} head "$@"\n'
        )
        (bin_dir / "head").chmod(0o755)
        result = run_busybox(bin_dir, process_command(config, filter_min=least))
    assert f"/proc/{ending}/stat" in result.stderr, result
    if least == FILTERED:
        assert result.stdout.endswith(f"\n{other}\n@head 1\n"), result
    else:
        assert result.exit_status == 1, result
        assert f"==> /proc/{other}/stat <==\n{other} ({t}) S " in result.stdout, result
    outcome = parse(config, result)
    assert (outcome.state, outcome.value) == (CheckState.OK, 1.0), outcome


def test_thresholds_with_busybox(applets: Path) -> None:
    for config in (
        MemoryConfig(warning_percent=99.8, critical_percent=99.9),
        DiskSpaceConfig(path="/", warning_percent=99.8, critical_percent=99.9),
        CpuConfig(warning_percent=99.8, critical_percent=99.9, sample_secs=0.2),
    ):
        outcome = check(applets, config)
        assert outcome.state is not CheckState.UNKNOWN, (config, outcome)
        assert outcome.value is not None, (config, outcome)
    full = check(applets, DiskSpaceConfig(path="/", warning_percent=0, critical_percent=0.001))
    assert full.state is CheckState.CRITICAL, full


def test_command_states_with_busybox(applets: Path) -> None:
    for status, state in ((0, CheckState.OK), (1, CheckState.WARNING), (2, CheckState.CRITICAL)):
        config = CommandConfig(command=f"echo 'state {status}'; exit {status}")
        result = run_busybox(applets, remote_command(config.command, timeout=10))
        outcome = parse(config, result)
        assert outcome.state is state, outcome
        assert outcome.message.endswith(f"state {status}"), outcome


def test_busybox_timeout_is_read_as_a_timeout(applets: Path) -> None:
    """busybox's ``timeout`` runs the command in its own process and leaves the TERM
    death to the shell (status 143), where coreutils' reports 124; both are timeouts."""
    frame = f'{remote_command("sleep 30", timeout=0.5)}; echo "status $?"'
    result = run_busybox(applets, frame)
    assert result.stdout == "status 143\n", result
    assert result.duration_s < 10
    assert is_remote_timeout(143, result.duration_s, 0.5)
