"""Pure parsers: ``(config, CommandResult) -> CheckOutcome`` for every check type.

No I/O, no clock: the same output always gives the same outcome, which the golden cases
in ``tests/checks/<type>/*.json`` pin down. Messages state the measured value and, when
a threshold decided, which one ("memory 83.2% used (warning ≥ 80%)").
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re

from agentless.checks.config import (
    CommandConfig,
    CpuConfig,
    DiskSpaceConfig,
    HttpConfig,
    MemoryConfig,
    ProbeConfig,
    ProcessConfig,
    TcpConfig,
    ThresholdConfig,
)
from agentless.checks.probes import COMM_LEN, STAT_HEAD
from agentless.result import CheckOutcome, CheckState, CommandResult
from agentless.transport import REMOTE_TIMEOUT_STATUSES

OK, WARNING, CRITICAL, UNKNOWN = (
    CheckState.OK,
    CheckState.WARNING,
    CheckState.CRITICAL,
    CheckState.UNKNOWN,
)
_MAX_MESSAGE = 200
_LISTEN = "0A"


def _first_line(*texts: str) -> str:
    for text in texts:
        for line in text.splitlines():
            if line.strip():
                return line.strip()[:_MAX_MESSAGE]
    return ""


def _failed(what: str, result: CommandResult) -> CheckOutcome:
    detail = _first_line(result.stderr, result.stdout) or f"exit status {result.exit_status}"
    return CheckOutcome(UNKNOWN, f"{what} failed: {detail}")


def _sections(stdout: str) -> dict[str, list[str]]:
    """Lines grouped under the ``@name`` marker lines a probe printed."""
    sections: dict[str, list[str]] = {}
    current: list[str] = sections.setdefault("", [])
    for line in stdout.splitlines():
        if line.startswith("@"):
            name, _, rest = line[1:].partition(" ")
            current = sections.setdefault(name, [])
            if rest:
                current.append(rest)
        else:
            current.append(line)
    return sections


def _rc(sections: dict[str, list[str]]) -> int | None:
    values = sections.get("rc")
    if not values:
        return None
    try:
        return int(values[-1])
    except ValueError:
        return None


def _pct(value: float) -> str:
    return f"{value:.1f}%"


def threshold_outcome(what: str, value: float, config: ThresholdConfig) -> CheckOutcome:
    """State of a usage ``value`` (percent) against the config's thresholds."""
    if value >= config.critical_percent:
        state, note = CRITICAL, f" (critical ≥ {config.critical_percent:g}%)"
    elif value >= config.warning_percent:
        state, note = WARNING, f" (warning ≥ {config.warning_percent:g}%)"
    else:
        state, note = OK, ""
    return CheckOutcome(state, f"{what} {_pct(value)} used{note}", value=round(value, 3))


# -- http ---------------------------------------------------------------------------------

_HTTP_STATUS = re.compile(r"^\s*HTTP/\S+\s+(\d{3})\b")


def _expected(config: HttpConfig) -> str:
    if config.expected_status is None:
        return "2xx"
    if isinstance(config.expected_status, int):
        return str(config.expected_status)
    return "/".join(str(code) for code in config.expected_status)


def parse_http(config: HttpConfig, result: CommandResult) -> CheckOutcome:
    sections = _sections(result.stdout)
    if "none" in sections:
        return CheckOutcome(UNKNOWN, "neither curl nor wget on host")
    status: int | None = None
    if "curl" in sections:
        codes = [line.strip() for line in sections["curl"] if line.strip().isdigit()]
        status = int(codes[-1]) if codes and codes[-1] != "000" else None
        error = _first_line(result.stderr) or f"curl exit status {_rc(sections)}"
    elif "wget" in sections:
        found = [m.group(1) for line in sections["wget"] if (m := _HTTP_STATUS.match(line))]
        status = int(found[-1]) if found else None
        lines = [line for line in sections["wget"] if line.strip()]
        error = lines[-1].strip()[:_MAX_MESSAGE] if lines else f"wget exit status {_rc(sections)}"
    else:
        return _failed("http probe", result)
    if status is None:
        return CheckOutcome(CRITICAL, f"{config.url}: {error}")
    details = {"status": float(status)}
    if config.accepts(status):
        return CheckOutcome(OK, f"HTTP {status} from {config.url}", float(status), details)
    message = f"HTTP {status} from {config.url} (expected {_expected(config)})"
    return CheckOutcome(CRITICAL, message, float(status), details)


# -- tcp ----------------------------------------------------------------------------------


def _proc_address(hex_addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw[::-1])
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return ipaddress.IPv6Address(words)


def _accepts_from(listen: ipaddress.IPv4Address | ipaddress.IPv6Address, target: str) -> bool:
    """Whether a socket listening on ``listen`` accepts connections to loopback ``target``."""
    v4 = target in ("127.0.0.1", "localhost")
    v6 = target in ("::1", "localhost")
    if isinstance(listen, ipaddress.IPv4Address):
        return v4 and str(listen) in ("0.0.0.0", "127.0.0.1")  # noqa: S104 - a wildcard listener
    if listen.ipv4_mapped is not None:
        return v4 and str(listen.ipv4_mapped) == "127.0.0.1"
    # "::" normally accepts IPv4 too (net.ipv6.bindv6only defaults to 0).
    return str(listen) == "::" or (v6 and str(listen) == "::1")


def _local_address(field: str, port: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address of a ``/proc/net/tcp`` "HEXADDR:HEXPORT" field when its port is ``port``."""
    hex_addr, colon, hex_port = field.partition(":")
    try:
        if colon and int(hex_port, 16) == port:
            return _proc_address(hex_addr)
    except ValueError:
        pass
    return None


def _listening(lines: list[str], port: int, target: str) -> bool:
    """Whether a "local-address state" line shows a listener that accepts ``target:port``."""
    for line in lines:
        fields = line.split()
        if len(fields) != 2 or fields[1] != _LISTEN:
            continue
        address = _local_address(fields[0], port)
        if address is not None and _accepts_from(address, target):
            return True
    return False


def _listen_outcome(config: TcpConfig, lines: list[str]) -> CheckOutcome:
    """Judge "ADDRESS:PORT ACCEPT-QUEUE" lines of the LISTEN sockets on the port."""
    where = f"{config.host}:{config.port}"
    waiting: int | None = None
    elsewhere: set[str] = set()
    for line in lines:
        fields = line.split()
        if len(fields) != 2:
            continue
        address = _local_address(fields[0], config.port)
        if address is None:
            continue
        try:
            queue = int(fields[1], 16)
        except ValueError:
            continue
        if _accepts_from(address, config.host):
            waiting = max(waiting or 0, queue)
        else:
            elsewhere.add(str(address))
    if waiting is None:
        only = f" (listening on {', '.join(sorted(elsewhere))} only)" if elsewhere else ""
        return CheckOutcome(CRITICAL, f"nothing listens on {where}{only}", 0.0)
    queued = f", {waiting} connection(s) waiting to be accepted" if waiting else ""
    details = {"accept_queue": float(waiting)}
    return CheckOutcome(OK, f"{where} is listening{queued}", 1.0, details)


def parse_tcp(config: TcpConfig, result: CommandResult) -> CheckOutcome:
    where = f"{config.host}:{config.port}"
    sections = _sections(result.stdout)
    if "listen" in sections:
        if sections.get("err", [""])[0] == "127":
            return CheckOutcome(
                UNKNOWN,
                f"cannot read the socket table for {where}: no sed on host "
                "(method: connect connects instead)",
            )
        if "err" in sections:
            return _failed("reading the socket table", result)
        return _listen_outcome(config, sections["listen"])
    if "proc" in sections:
        if "local_address st" not in sections["proc"]:
            return _failed("reading /proc/net/tcp", result)
        if _listening(sections["proc"], config.port, config.host):
            return CheckOutcome(OK, f"{where} is listening", 1.0)
        return CheckOutcome(CRITICAL, f"nothing listens on {where}", 0.0)
    if "none" in sections:
        return CheckOutcome(UNKNOWN, f"cannot test {where}: neither bash nor nc on host")
    rc = _rc(sections)
    if rc == 0:
        return CheckOutcome(OK, f"{where} accepts connections", 1.0)
    if rc in REMOTE_TIMEOUT_STATUSES:
        return CheckOutcome(CRITICAL, f"connecting to {where} timed out", 0.0)
    if rc is None:
        return _failed("tcp probe", result)
    reason = _first_line(result.stderr) or f"exit status {rc}"
    return CheckOutcome(CRITICAL, f"cannot connect to {where}: {reason}", 0.0)


# -- process ------------------------------------------------------------------------------

_STAT = re.compile(r"^(\d+) \((.*)\) (\S)")
_CMDLINE_HEADER = re.compile(r"\n?==> (\d+)/cmdline <==\n")
#: The start of ``head -v -c 32 -- /proc/[0-9]*/stat``: a header line, then "pid (comm".
_HEAD_STAT = re.compile(r"==> /proc/\d+/stat <==\n\d+ \(")
#: What follows "(comm) S" in a record: numeric fields only.
_FIELDS = re.compile(r"[-0-9 ]*")
_DEAD_STATES = frozenset("ZXx")
_PROBE_COMMS = frozenset({"sh", "dash", "bash", "timeout"})
#: The process probe's status lines: head's, in the stream, and sed's, after it.
_STATUS_OF = {"@head": "head", "@rc": "sed"}


def _process_names(stdout: str) -> tuple[dict[int, str], dict[int, str], set[int]]:
    """comm of live processes and argv[0] by pid, and the probe's own pids."""
    own: set[int] = set()
    comm: dict[int, str] = {}
    argv0: dict[int, str] = {}
    stats, _, cmdlines = stdout.partition("\n@cmdline\n")
    for line in stats.splitlines():
        if line.startswith("@self "):
            own = {int(pid) for pid in line.split()[1:] if pid.isdigit()}
        elif (match := _STAT.match(line)) and match.group(3) not in _DEAD_STATES:
            comm[int(match.group(1))] = match.group(2)
    parts = _CMDLINE_HEADER.split(cmdlines)
    for i in range(1, len(parts) - 1, 2):
        argv0[int(parts[i])] = parts[i + 1].split("\0", 1)[0].split("\n@", 1)[0]
    return comm, argv0, own


def _matches(name: str, comm: str | None, argv0: str | None) -> bool:
    if comm == name:
        return True
    if argv0 and argv0.rsplit("/", 1)[-1] == name:
        return True
    return len(name) > COMM_LEN and comm == name[:COMM_LEN] and argv0 is None


def _count_comm(stdout: str, name: str) -> int | None:
    """Live processes whose comm is ``name`` in "pid (comm) state" lines (None: no lines).

    A substring scan rather than a parse of every line: the listing holds every process
    of the host, the match only a few. In ``head -v``'s listing a record counts only
    under the header of its own pid, so a process cannot forge records by putting a
    newline in its name (15 characters hold no header and a record together), and only
    as the host's filter counts it (:func:`~agentless.checks.probes._comm_filter`):
    a whole line of head's 32 bytes (a comm with a newline shortens it) with only
    numeric fields after the state, so that the matched ``)`` is the record's own (a
    comm ``"sshd) R 1 2"`` is not ``sshd``).
    """
    headed = _HEAD_STAT.match(stdout) is not None
    if not headed and _STAT.match(stdout) is None:
        return None
    needle = f" ({name}) "
    count, at = 0, stdout.find(needle)
    while at >= 0:
        line_start = stdout.rfind("\n", 0, at) + 1
        pid = stdout[line_start:at]
        state = stdout[at + len(needle) : at + len(needle) + 1]
        if pid.isdigit() and state and state not in _DEAD_STATES:
            header = f"==> /proc/{pid}/stat <==\n"
            if not headed:
                count += 1
            elif stdout.endswith(header, 0, line_start):
                line_end = stdout.find("\n", at)
                line_end = len(stdout) if line_end < 0 else line_end
                fields = at + len(needle) + 1
                if line_end - line_start == STAT_HEAD and _FIELDS.fullmatch(
                    stdout, fields, line_end
                ):
                    count += 1
        at = stdout.find(needle, at + len(needle))
    return count


def _count_pids(config: ProcessConfig, listing: str, stderr: str) -> CheckOutcome:
    """The host's ``sed`` printed ``@proc`` at head's first header, one pid per match,
    then head's status (``@head``, the last line); ``@rc`` after them is sed's.

    head's status 1 (a process ended during the listing, so its stat did not open or
    read) still counts the others. Filtering on the host leaves the client a few
    lines: 0.016 ms per check here, where scanning the whole listing of a host with
    ~3,200 processes took 1.3 ms (and receiving its 180 KB more than that).
    """
    lines = listing.splitlines()
    last = lines[-1] if lines else ""
    if last == "@rc 127":
        return CheckOutcome(UNKNOWN, "cannot list processes: no sed on host")
    if last == "@head 127":
        return CheckOutcome(UNKNOWN, "cannot list processes: no head on host")
    if lines[:1] != ["@proc"] or last not in ("@head 0", "@head 1"):
        program, _, status = last.partition(" ")
        detail = _first_line(stderr) or (
            f"{_STATUS_OF[program]} exit status {status}"
            if program in _STATUS_OF
            else "no status from head"
        )
        return CheckOutcome(UNKNOWN, f"listing /proc failed: {detail}")
    return _process_outcome(config, sum(1 for line in lines[1:-1] if line.isdigit()))


def _process_outcome(config: ProcessConfig, count: int) -> CheckOutcome:
    bounds = f"min {config.min_count}" + (
        f", max {config.max_count}" if config.max_count is not None else ""
    )
    message = f"{count} process{'es' if count != 1 else ''} named {config.name!r}"
    if count < config.min_count or (config.max_count is not None and count > config.max_count):
        return CheckOutcome(CRITICAL, f"{message} ({bounds})", float(count))
    return CheckOutcome(OK, message, float(count))


def parse_process(config: ProcessConfig, result: CommandResult) -> CheckOutcome:
    """The listing tool may exit non-zero when a process ends while it reads: the listing
    still counts.

    The short-name probe's first line says which listing follows (see
    :func:`~agentless.checks.probes.process_command`): ``@all``, the whole listing, for
    :func:`_count_comm`; ``@filtered``, the host's matches, for :func:`_count_pids`.
    """
    if not result.stdout.startswith("@self "):
        path, _, listing = result.stdout.partition("\n")
        if path == "@filtered":
            return _count_pids(config, listing, result.stderr)
        if path != "@all":
            return _failed("listing /proc", result)
        count = _count_comm(listing, config.name)
        if count is None:
            return _failed("listing /proc", dataclasses.replace(result, stdout=listing))
        return _process_outcome(config, count)
    if "@end" not in result.stdout:
        return _failed("listing /proc", result)
    comm, argv0, own = _process_names(result.stdout)
    if not comm:
        return _failed("listing /proc", result)
    # The probe's own shell, and the `timeout` that wraps it over SSH, are not counted;
    # its parent under the local transport is OpsMap itself, which is.
    probe = {pid for pid in own if comm.get(pid) in _PROBE_COMMS}
    pids = set(comm) - probe
    count = sum(1 for pid in pids if _matches(config.name, comm.get(pid), argv0.get(pid)))
    return _process_outcome(config, count)


# -- native:memory, native:cpu, native:disk_space -----------------------------------------


def parse_memory(config: MemoryConfig, result: CommandResult) -> CheckOutcome:
    if result.exit_status != 0:
        return _failed("reading /proc/meminfo", result)
    kib: dict[str, int] = {}
    for line in result.stdout.splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            kib[key] = int(fields[0])
    total = kib.get("MemTotal", 0)
    if total <= 0:
        return CheckOutcome(UNKNOWN, "no MemTotal in /proc/meminfo")
    available = kib.get("MemAvailable")
    if available is None:
        available = kib.get("MemFree", 0) + kib.get("Buffers", 0) + kib.get("Cached", 0)
    used = 100.0 * (total - available) / total
    outcome = threshold_outcome("memory", used, config)
    details = {"total_kib": float(total), "available_kib": float(available)}
    return CheckOutcome(outcome.state, outcome.message, outcome.value, details)


def _cpu_sample(line: str) -> tuple[int, int] | None:
    fields = line.split()
    if len(fields) < 5 or fields[0] != "cpu":
        return None
    try:
        ticks = [int(v) for v in fields[1:9]]
    except ValueError:
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return sum(ticks), idle


def parse_cpu(config: CpuConfig, result: CommandResult) -> CheckOutcome:
    if result.exit_status != 0:
        return _failed("sampling /proc/stat", result)
    samples = [s for line in result.stdout.splitlines() if (s := _cpu_sample(line))]
    if len(samples) != 2:
        return CheckOutcome(UNKNOWN, f"expected 2 samples of /proc/stat, got {len(samples)}")
    (total0, idle0), (total1, idle1) = samples
    elapsed = total1 - total0
    if elapsed <= 0:
        return CheckOutcome(UNKNOWN, "no CPU time elapsed between samples")
    busy = 100.0 * (elapsed - (idle1 - idle0)) / elapsed
    return threshold_outcome("cpu", max(0.0, min(100.0, busy)), config)


def parse_disk_space(config: DiskSpaceConfig, result: CommandResult) -> CheckOutcome:
    if result.exit_status != 0:
        return _failed(f"df {config.path}", result)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    fields = lines[-1].split() if len(lines) >= 2 else []
    if len(fields) < 6 or not (fields[2].isdigit() and fields[3].isdigit()):
        return CheckOutcome(UNKNOWN, f"unexpected df output: {_first_line(result.stdout)!r}")
    used, available = int(fields[2]), int(fields[3])
    if used + available == 0:
        return CheckOutcome(UNKNOWN, f"{config.path}: filesystem reports no space at all")
    percent = 100.0 * used / (used + available)
    outcome = threshold_outcome(f"disk {fields[-1]}", percent, config)
    details = {"used_kib": float(used), "available_kib": float(available)}
    return CheckOutcome(outcome.state, outcome.message, outcome.value, details)


# -- command ------------------------------------------------------------------------------


def parse_command(config: CommandConfig, result: CommandResult) -> CheckOutcome:
    """Nagios plugin convention: exit 0/1/2/3, first line of output, perfdata dropped."""
    state = CheckState.from_exit_code(result.exit_status)
    line = _first_line(result.stdout, result.stderr).split("|", 1)[0].strip()
    if result.exit_status not in (0, 1, 2, 3):
        line = f"exit status {result.exit_status}" + (f": {line}" if line else "")
    message = line or f"exit status {result.exit_status}"
    return CheckOutcome(state, message, float(result.exit_status or 0))


def parse(config: ProbeConfig, result: CommandResult) -> CheckOutcome:
    """The outcome of the probe for ``config``, from what it printed."""
    match config:
        case HttpConfig():
            return parse_http(config, result)
        case TcpConfig():
            return parse_tcp(config, result)
        case ProcessConfig():
            return parse_process(config, result)
        case MemoryConfig():
            return parse_memory(config, result)
        case CpuConfig():
            return parse_cpu(config, result)
        case DiskSpaceConfig():
            return parse_disk_space(config, result)
        case CommandConfig():
            return parse_command(config, result)
    raise TypeError(f"no parser for {type(config).__name__}")
