"""Every check type over real SSH, passing and failing for real, through run_checks."""

from __future__ import annotations

import asyncio
import http.server
import secrets
import shlex
import socket
import threading
from collections.abc import Iterator

import pytest
from agentless_support import transport_for, wait_until_async
from sshd import Fleet, Sshd, free_port

from agentless.checks import probes
from agentless.checks.config import (
    CommandConfig,
    CpuConfig,
    DiskSpaceConfig,
    HttpConfig,
    MemoryConfig,
    ProbeConfig,
    ProcessConfig,
    TcpConfig,
)
from agentless.checks.parsers import parse
from agentless.checks.probes import probe_command
from agentless.inventory import Host
from agentless.result import CheckOutcome, CheckState
from agentless.runner import CheckRun, CheckTarget, run_checks
from agentless.ssh import SshTransport
from agentless.transport import Inline

pytestmark = pytest.mark.sshd
OK, WARNING, CRITICAL, UNKNOWN = (
    CheckState.OK,
    CheckState.WARNING,
    CheckState.CRITICAL,
    CheckState.UNKNOWN,
)


@pytest.fixture(scope="module")
def host(sshd_fleet: Fleet) -> Host:
    [server] = sshd_fleet.start(1)
    return sshd_fleet.host(server)


def target(host: Host, check_type: str, config: ProbeConfig, timeout_s: float = 10) -> CheckTarget:
    return CheckTarget(f"{check_type}@{host.name}", host, check_type, config, timeout_s)


def run(fleet: Fleet, *targets: CheckTarget) -> list[CheckRun]:
    async def scenario() -> list[CheckRun]:
        transport = transport_for(fleet)
        try:
            return await run_checks(targets, transport=transport)
        finally:
            await transport.aclose()

    return asyncio.run(scenario())


def states(runs: list[CheckRun]) -> list[CheckState]:
    return [r.outcome.state for r in runs]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


def test_tcp_port_that_listens_then_closes(
    sshd_fleet: Fleet, host: Host, listener: socket.socket
) -> None:
    """Both ways of judging a loopback port: the socket table (auto) and a real connect."""
    port = listener.getsockname()[1]
    checks = [
        target(host, "tcp", TcpConfig(port=port)),
        target(host, "tcp", TcpConfig(port=port, host="localhost")),
        target(host, "tcp", TcpConfig(port=port, method="connect")),
        target(host, "tcp", TcpConfig(port=port, host="localhost", method="connect")),
    ]
    up = run(sshd_fleet, *checks)
    assert states(up) == [OK, OK, OK, OK], up
    assert up[0].outcome.message.startswith(f"127.0.0.1:{port} is listening")
    assert up[2].outcome.message == f"127.0.0.1:{port} accepts connections"
    listener.close()
    down = run(sshd_fleet, *checks)
    assert states(down) == [CRITICAL, CRITICAL, CRITICAL, CRITICAL], down
    assert down[0].outcome.message == f"nothing listens on 127.0.0.1:{port}"
    assert f"cannot connect to 127.0.0.1:{port}" in down[2].outcome.message
    assert "refused" in down[2].outcome.message


def test_tcp_listen_table_shows_the_accept_queue_and_other_addresses(
    sshd_fleet: Fleet, host: Host
) -> None:
    """Connections nobody accepted are counted; a listener on another address is named."""
    sock = socket.socket()
    sock.bind(("127.0.0.2", 0))
    sock.listen(8)
    port = sock.getsockname()[1]
    loop = socket.socket()
    loop.bind(("127.0.0.1", port))
    loop.listen(8)
    waiting = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    check = target(host, "tcp", TcpConfig(port=port))
    try:
        [busy] = run(sshd_fleet, check)
        loop.close()
        [elsewhere] = run(sshd_fleet, check)
    finally:
        for conn in waiting:
            conn.close()
        sock.close()
    assert busy.outcome.state is OK, busy
    assert busy.outcome.details == {"accept_queue": 3.0}
    assert "3 connection(s) waiting to be accepted" in busy.outcome.message
    assert elsewhere.outcome.state is CRITICAL, elsewhere
    assert elsewhere.outcome.message == (
        f"nothing listens on 127.0.0.1:{port} (listening on 127.0.0.2 only)"
    )


def test_tcp_loopback_without_bash_or_nc_reads_proc(sshd_fleet: Fleet, host: Host) -> None:
    """With only coreutils on PATH, a connect check of a loopback port is judged from
    /proc/net/tcp* by the shell's builtins; the socket-table check asks for sed."""
    bare = sshd_fleet.workdir / f"coreutils-only-{secrets.token_hex(3)}"
    bare.mkdir()
    bare.chmod(0o755)
    for tool in ("cat", "tr", "cut", "sort", "timeout"):
        (bare / tool).symlink_to(f"/usr/bin/{tool}")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    connect = TcpConfig(port=sock.getsockname()[1], method="connect")
    auto = TcpConfig(port=connect.port)

    async def probe(config: TcpConfig) -> CheckOutcome:
        command = f"PATH={bare}; export PATH\n{probe_command(config, timeout_s=10)}"
        transport = transport_for(sshd_fleet)
        try:
            return parse(config, await transport.run(host, command, timeout=10))
        finally:
            await transport.aclose()

    try:
        up = asyncio.run(probe(connect))
        no_sed = asyncio.run(probe(auto))
    finally:
        sock.close()
    down = asyncio.run(probe(connect))
    assert (up.state, down.state) == (OK, CRITICAL), (up, down)
    assert down.message == f"nothing listens on 127.0.0.1:{connect.port}"
    assert no_sed.state is CheckState.UNKNOWN, no_sed
    assert "no sed on host (method: connect connects instead)" in no_sed.message


def test_tcp_by_connecting_to_a_non_loopback_name(sshd_fleet: Fleet, host: Host) -> None:
    """127.0.0.2 is not special-cased, so the probe really connects (bash or nc)."""
    sock = socket.socket()
    sock.bind(("127.0.0.2", 0))
    sock.listen()
    port = sock.getsockname()[1]
    check = target(host, "tcp", TcpConfig(port=port, host="127.0.0.2"))
    try:
        [up] = run(sshd_fleet, check)
    finally:
        sock.close()
    [down] = run(sshd_fleet, check)
    assert (up.outcome.state, down.outcome.state) == (OK, CRITICAL), (up, down)
    assert "refused" in down.outcome.message


@pytest.fixture(params=["filtered", "all"])
def process_listing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each listing of the process probe over SSH: the host filters at 0 processes, or
    lists whole below 2**30."""
    monkeypatch.setattr(probes, "PROCESS_FILTER_MIN", 0 if request.param == "filtered" else 1 << 30)
    return str(request.param)


def test_process_that_runs_then_stops(sshd_fleet: Fleet, host: Host) -> None:
    name = f"opsmap-p{secrets.token_hex(4)}"
    (sshd_fleet.workdir / name).symlink_to("/bin/sleep")
    check = target(host, "process", ProcessConfig(name=name, min_count=1))
    two = target(host, "process", ProcessConfig(name=name, min_count=2))

    async def scenario() -> None:
        transport = transport_for(sshd_fleet)
        try:
            started = await transport.run(
                host, f"{sshd_fleet.workdir / name} 1000 >/dev/null 2>&1 & echo $!", timeout=10
            )
            pid = started.stdout.strip()
            runs = await run_checks([check, two], transport=transport)
            assert states(runs) == [OK, CRITICAL]
            assert runs[0].outcome.value == 1.0
            await transport.run(host, f"kill {pid}", timeout=10)
            down: list[CheckRun] = []

            async def gone() -> bool:
                down[:] = await run_checks([check], transport=transport)
                return down[0].outcome.state is CRITICAL

            assert await wait_until_async(gone), down
            assert "0 processes" in down[0].outcome.message
        finally:
            await transport.aclose()

    asyncio.run(scenario())


def test_process_name_with_regex_characters_over_ssh(
    sshd_fleet: Fleet, host: Host, process_listing: str
) -> None:
    """The name reaches the host's sed as a literal, through the kept shell's quoting."""
    token = secrets.token_hex(2)
    name, decoy = f"o.{token}*[x]'", f"oo{token}x"
    for program in (name, decoy):
        (sshd_fleet.workdir / program).symlink_to("/bin/sleep")
    check = target(host, "process", ProcessConfig(name=name, max_count=1))
    programs = [shlex.quote(str(sshd_fleet.workdir / p)) for p in (name, decoy)]

    async def scenario() -> list[CheckRun]:
        transport = transport_for(sshd_fleet)
        try:
            for program in programs:
                await transport.run(host, f"{program} 5 >/dev/null 2>&1 &", timeout=10)
            listed = await transport.run(
                host, probe_command(check.config, timeout_s=10), timeout=10
            )
            assert listed.stdout.startswith(f"@{process_listing}\n"), listed
            # The kept shell's positional parameters, after the listing: still none.
            after = await transport.run(host, Inline('echo "@args $# $$"'), timeout=10)
            assert after.stdout.startswith("@args 0 "), after
            return await run_checks([check], transport=transport)
        finally:
            await transport.aclose()

    [run_] = asyncio.run(scenario())
    assert (run_.outcome.state, run_.outcome.value) == (OK, 1.0), run_


def test_process_name_longer_than_comm(sshd_fleet: Fleet, host: Host) -> None:
    name = f"opsmap-long-name-{secrets.token_hex(4)}"
    (sshd_fleet.workdir / name).symlink_to("/bin/sleep")
    check = target(host, "process", ProcessConfig(name=name))
    prefix_only = target(host, "process", ProcessConfig(name=name[:15] + "-other"))

    async def scenario() -> list[CheckRun]:
        transport = transport_for(sshd_fleet)
        try:
            await transport.run(
                host, f"{sshd_fleet.workdir / name} 3 >/dev/null 2>&1 &", timeout=10
            )
            return await run_checks([check, prefix_only], transport=transport)
        finally:
            await transport.aclose()

    assert states(asyncio.run(scenario())) == [OK, CRITICAL]


@pytest.mark.parametrize(
    ("check_type", "config_type"),
    [("native:memory", MemoryConfig), ("native:disk_space", DiskSpaceConfig)],
)
def test_thresholds_crossed(
    sshd_fleet: Fleet, host: Host, check_type: str, config_type: type[ProbeConfig]
) -> None:
    never = config_type(warning_percent=99.9, critical_percent=100)  # type: ignore[call-arg]
    warn = config_type(warning_percent=0, critical_percent=100)  # type: ignore[call-arg]
    crit = config_type(warning_percent=0.0, critical_percent=0.1)  # type: ignore[call-arg]
    runs = run(sshd_fleet, *(target(host, check_type, c) for c in (never, warn, crit)))
    assert states(runs) == [OK, WARNING, CRITICAL], runs
    assert all(r.outcome.value is not None and 0 < r.outcome.value < 100 for r in runs)
    assert "(critical ≥ 0.1%)" in runs[2].outcome.message


def test_cpu_thresholds_crossed_under_real_load(sshd_fleet: Fleet, host: Host) -> None:
    """A busy loop on the host spans the samples, so some CPU time is surely busy.

    The loop is started in the background first: a host's checks sent together run one
    after another on one shell, so a busy loop sent in the same batch would end before
    the samples begin.
    """
    busy = "nohup timeout 5 sh -c 'while :; do :; done' >/dev/null 2>&1 & echo started"
    [started] = run(sshd_fleet, target(host, "command", CommandConfig(command=busy)))
    assert started.outcome.state is OK, started
    configs = [
        CpuConfig(warning_percent=99.9, critical_percent=100, sample_secs=0.5),
        CpuConfig(warning_percent=0, critical_percent=100, sample_secs=0.5),
        CpuConfig(warning_percent=0, critical_percent=0.1, sample_secs=0.5),
    ]
    cpu = run(sshd_fleet, *(target(host, "native:cpu", c) for c in configs))
    values = [r.outcome.value for r in cpu]
    assert all(v is not None and 0.1 <= v <= 100 for v in values), cpu
    saturated = any(v == 100.0 for v in values)
    assert states(cpu) == [OK, WARNING, CRITICAL] or saturated, cpu
    assert cpu[2].outcome.state is CRITICAL


def test_disk_space_of_a_missing_path_is_unknown(sshd_fleet: Fleet, host: Host) -> None:
    [missing] = run(sshd_fleet, target(host, "native:disk_space", DiskSpaceConfig(path="/no/such")))
    assert missing.outcome.state is UNKNOWN
    assert "No such file" in missing.outcome.message


def test_command_exit_codes(sshd_fleet: Fleet, host: Host) -> None:
    commands = [f"echo 'state {code} | perf=1'; exit {code}" for code in (0, 1, 2, 3, 7)]
    runs = run(sshd_fleet, *(target(host, "command", CommandConfig(command=c)) for c in commands))
    assert states(runs) == [OK, WARNING, CRITICAL, UNKNOWN, UNKNOWN]
    assert runs[1].outcome.message == "state 1"
    assert runs[4].outcome.message == "exit status 7: state 7"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def test_http_ok_bad_status_and_refused(sshd_fleet: Fleet, host: Host) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://localhost:{server.server_address[1]}"
    closed = f"http://127.0.0.1:{free_port()}/"
    try:
        runs = run(
            sshd_fleet,
            target(host, "http", HttpConfig(url=f"{base}/health")),
            target(host, "http", HttpConfig(url=f"{base}/broken")),
            target(host, "http", HttpConfig(url=f"{base}/broken", expected_status=[503])),
            target(host, "http", HttpConfig(url=closed)),
        )
    finally:
        server.shutdown()
        server.server_close()
    assert states(runs) == [OK, CRITICAL, OK, CRITICAL], runs
    assert runs[1].outcome.message.startswith("HTTP 503")
    assert runs[1].outcome.value == 503.0


def test_check_that_outlives_its_timeout_is_unknown(sshd_fleet: Fleet, host: Host) -> None:
    [slow] = run(
        sshd_fleet, target(host, "command", CommandConfig(command="sleep 30"), timeout_s=1)
    )
    assert slow.outcome.state is UNKNOWN
    assert slow.outcome.message == "timed out after 1s"
    assert not slow.host_unreachable


def _counting_listener() -> tuple[socket.socket, list[int], threading.Thread]:
    """A port that accepts and drops every connection, counting them."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return sock, accepted, thread


def test_unreachable_host_makes_every_check_unknown_with_one_attempt(sshd_fleet: Fleet) -> None:
    sock, accepted, thread = _counting_listener()
    server = Sshd(
        "dropper", sock.getsockname()[1], sshd_fleet.workdir, sshd_fleet.workdir, sshd_fleet.workdir
    )
    host = sshd_fleet.host(server)
    checks = [
        target(host, "tcp", TcpConfig(port=22)),
        target(host, "process", ProcessConfig(name="x")),
        target(host, "native:memory", MemoryConfig()),
        target(host, "native:disk_space", DiskSpaceConfig()),
        target(host, "command", CommandConfig(command="exit 2")),
    ]

    async def scenario() -> list[CheckRun]:
        transport = transport_for(sshd_fleet, backoff_base_s=0.0)
        try:
            return await run_checks(checks, transport=transport)
        finally:
            await transport.aclose()

    try:
        runs = asyncio.run(scenario())
    finally:
        sock.close()
        thread.join(timeout=5)
    assert states(runs) == [UNKNOWN] * 5
    assert all(r.host_unreachable for r in runs)
    assert all(r.outcome.message.startswith("host unreachable:") for r in runs)
    assert len(accepted) == 1

    refused = sshd_fleet.host(Sshd("refused", free_port(), *[sshd_fleet.workdir] * 3))
    [run_refused] = run(sshd_fleet, target(refused, "command", CommandConfig(command="true")))
    assert run_refused.outcome.state is UNKNOWN
    assert "connection refused" in run_refused.outcome.message


def test_changed_host_key_makes_checks_unknown(sshd_fleet: Fleet) -> None:
    [server] = sshd_fleet.start(1)
    host = sshd_fleet.host(server)
    check = target(host, "command", CommandConfig(command="echo fine"))
    assert states(run(sshd_fleet, check)) == [OK]
    sshd_fleet.restart(server, new_host_key=True)
    [refused] = run(sshd_fleet, check)
    assert refused.outcome.state is UNKNOWN
    assert refused.host_unreachable
    assert "host key" in refused.outcome.message


def test_transport_is_shared_across_calls(sshd_fleet: Fleet, host: Host) -> None:
    async def scenario() -> SshTransport:
        transport = transport_for(sshd_fleet)
        try:
            for _ in range(3):
                runs = await run_checks(
                    [target(host, "native:memory", MemoryConfig())] * 8, transport=transport
                )
                assert states(runs) == [OK] * 8
            assert transport.connections_opened(host) == 1
        finally:
            await transport.aclose()
        return transport

    asyncio.run(scenario())
