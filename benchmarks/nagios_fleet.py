"""The Nagios 4 phase of benchmarks/fleet_bench.py: the same 5 checks on the same hosts.

Nagios runs from a self-contained configuration in a temp directory (its own log,
status, perfdata, lock and temp paths; no CGI, no external command pipe, no state
retention, no notifications), as the fleet's login user when the benchmark is root
(Nagios 4.4 would run as root, but its checks need no privilege and a real install does
not), with ``interval_length=1`` so that ``check_interval`` is the benchmark's interval
in seconds, ``max_check_attempts 1`` like OpsMap's bench checks, and hosts that are never
checked on a schedule (``check_dummy``, ``check_interval 0``: a host check would be a
sixth check per host that OpsMap does not run).

Every service is ``check_by_ssh`` to the host's own address with the fleet's client key
and known_hosts (``StrictHostKeyChecking=yes``), ``ControlMaster=auto``,
``ControlPersist=yes`` and ``ControlPath=<dir>/%C``: the first check of a host leaves
one master connection per host in the background, every later check is a multiplexed
session on it, which is what OpsMap does with one asyncssh connection per host. The
remote commands are the Nagios idiom for OpsMap's bench checks
(benchmarks/bench_cold.py ``bench_checks``): ``check_tcp`` to the plain listener,
``check_procs -C sshd -c 1:``, memory as one ``awk`` over /proc/meminfo that prints a
Nagios status (monitoring-plugins has no ``check_mem``, and ``check_swap`` measures
something else), ``check_disk -w 1% -c 0% -p /`` and ``echo OK - fine``.

Each executed service check appends one line (state, host, service, output) to the
service perfdata file, which Nagios writes as each result is processed: the lines over
the window are the checks run, and their states. CPU is the whole Nagios side: the main
process and its workers (utime + stime + cutime + cstime of ``/proc/<pid>/stat``: the
workers reap ``check_by_ssh``, which reaps its ``ssh`` mux client), plus utime + stime of
the ssh masters, which daemonize away from Nagios (found by the ControlPath directory in
``/proc/*/cmdline``, where a detached master reads ``ssh: <ControlPath> [mux]``). Neither
side counts the remote end (sshd's sessions and the commands they run), which is this
machine too. Schedule lag is Nagios's check latency as ``nagios4stats`` reports it from
status.dat (each service's latest latency: average and maximum). The count was checked on
a small run (``--only nagios --hosts 10 --interval 10 --duration 120 --warmup 20``): 599
lines for the 600 checks due, every one of the 50 services 11 or 12 times.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

NAGIOS = Path("/usr/sbin/nagios4")
NAGIOSTATS = Path("/usr/sbin/nagios4stats")
PLUGINS = Path("/usr/lib/nagios/plugins")
CLK_TCK = os.sysconf("SC_CLK_TCK")
CHECK_TIMEOUT_S = 20
"""Like the OpsMap bench checks' ``timeout_secs``."""

MEMORY_AWK = (
    "awk '/^MemTotal:/ {t = $2} /^MemAvailable:/ {a = $2} END {"
    "u = 100 * (t - a) / t; s = u >= 100 ? 2 : u >= 99 ? 1 : 0; "
    'split("OK WARNING CRITICAL", n, " "); '
    'printf "%s - %.1f%% used|used=%.1f%%;99;100\\n", n[s + 1], u, u; exit s}\' /proc/meminfo'
)
"""Used memory (MemTotal - MemAvailable) against OpsMap's bench thresholds (99/100%)."""


def remote_checks(tcp_port: int) -> list[tuple[str, str]]:
    """(service name, remote command): the Nagios idiom for each of OpsMap's bench checks."""
    return [
        ("tcp", f"{PLUGINS}/check_tcp -H 127.0.0.1 -p {tcp_port}"),
        ("process", f"{PLUGINS}/check_procs -C sshd -c 1:"),
        ("memory", MEMORY_AWK),
        ("disk_space", f"{PLUGINS}/check_disk -w 1% -c 0% -p /"),
        ("command", "echo OK - fine"),
    ]


def literal(text: str) -> str:
    """``text`` as it must stand in an object definition to reach the check's command line
    unchanged: ``$`` doubled (else a macro), ``;`` escaped (else a comment)."""
    if "\n" in text:
        raise ValueError(f"a directive is one line: {text!r}")
    return text.replace("$", "$$").replace(";", "\\;")


@dataclass(frozen=True)
class Fleet:
    """What the Nagios side knows of the benchmark's fleet."""

    addresses: Sequence[str]
    port: int
    login: str
    client_key: Path
    known_hosts: Path
    tcp_port: int


@dataclass(frozen=True)
class Layout:
    """The paths of one generated configuration: ``root`` holds Nagios's files, ``control``
    the ssh control sockets (its own short directory: a socket path has at most 107
    bytes, and ssh adds a 17-byte suffix to ``%C``'s 40 while it creates one)."""

    root: Path
    control: Path

    @property
    def cfg(self) -> Path:
        return self.root / "nagios.cfg"

    @property
    def objects(self) -> Path:
        return self.root / "objects.cfg"

    @property
    def perfdata(self) -> Path:
        return self.root / "service-perfdata.tsv"

    @property
    def key(self) -> Path:
        return self.root / "client_key"


def by_ssh(fleet: Fleet, layout: Layout, command: str) -> str:
    """One ``check_by_ssh`` command line, shell-quoted: Nagios splits it into argv itself
    (quotes are no reason for it to run ``/bin/sh``, which it does not here)."""
    argv = [
        f"{PLUGINS}/check_by_ssh", "-H", "$HOSTADDRESS$", "-p", str(fleet.port),
        "-l", fleet.login, "-i", str(layout.key), "-t", str(CHECK_TIMEOUT_S), "-E",
        "-o", f"UserKnownHostsFile={fleet.known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", "GlobalKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes", "-o", "ControlMaster=auto",
        "-o", f"ControlPath={layout.control}/%C", "-o", "ControlPersist=yes",
    ]  # fmt: skip
    quoted = " ".join(a if a == "$HOSTADDRESS$" else literal(shlex.quote(a)) for a in argv)
    return f"{quoted} -C {literal(shlex.quote(command))}"


def main_config(layout: Layout, *, user: str, group: str) -> str:
    root = layout.root
    return "\n".join([
        f"cfg_file={layout.objects}",
        f"log_file={root / 'nagios.log'}",
        f"object_cache_file={root / 'objects.cache'}",
        f"precached_object_file={root / 'objects.precache'}",
        f"status_file={root / 'status.dat'}",
        "status_update_interval=5",
        f"lock_file={root / 'nagios.lock'}",
        f"temp_file={root / 'nagios.tmp'}",
        f"temp_path={root / 'tmp'}",
        f"check_result_path={root / 'checkresults'}",
        f"command_file={root / 'nagios.cmd'}",
        "check_external_commands=0",
        f"query_socket={root / 'nagios.qh'}",
        f"nagios_user={user}",
        f"nagios_group={group}",
        "illegal_macro_output_chars=`~$&|'\"<>",
        "use_syslog=0",
        "log_rotation_method=n",
        "log_initial_states=0",
        "log_current_states=0",
        "log_service_retries=0",
        "retain_state_information=0",
        "interval_length=1",
        "execute_service_checks=1",
        "execute_host_checks=1",
        "enable_notifications=0",
        "enable_event_handlers=0",
        "enable_flap_detection=0",
        "check_service_freshness=0",
        "check_host_freshness=0",
        "check_for_orphaned_services=0",
        "check_for_orphaned_hosts=0",
        "check_for_updates=0",
        "enable_predictive_host_dependency_checks=0",
        "enable_predictive_service_dependency_checks=0",
        "service_inter_check_delay_method=s",
        "service_interleave_factor=s",
        "max_concurrent_checks=0",
        f"service_check_timeout={CHECK_TIMEOUT_S + 5}",
        "process_performance_data=1",
        f"service_perfdata_file={layout.perfdata}",
        "service_perfdata_file_template=$SERVICESTATE$\\t$HOSTNAME$\\t$SERVICEDESC$\\t"
        "$SERVICEOUTPUT$",
        "service_perfdata_file_mode=a",
        "",
    ])  # fmt: skip


def objects_config(fleet: Fleet, layout: Layout, *, interval: int) -> str:
    checks = remote_checks(fleet.tcp_port)
    parts = [
        "define timeperiod {\n  timeperiod_name always\n  alias always\n"
        + "".join(f"  {day} 00:00-24:00\n" for day in (
            "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
        + "}",
        "define command {\n  command_name none\n  command_line /bin/true\n}",
        f"define command {{\n  command_name up\n  command_line {PLUGINS}/check_dummy 0 up\n}}",
        "define contact {\n  contact_name nobody\n  host_notifications_enabled 0\n"
        "  service_notifications_enabled 0\n  host_notification_period always\n"
        "  service_notification_period always\n  host_notification_options n\n"
        "  service_notification_options n\n  host_notification_commands none\n"
        "  service_notification_commands none\n}",
        *(
            f"define command {{\n  command_name bench_{name}\n"
            f"  command_line {by_ssh(fleet, layout, command)}\n}}"
            for name, command in checks
        ),
        "define host {\n  name bench-host\n  register 0\n  check_command up\n"
        "  check_interval 0\n  max_check_attempts 1\n  check_period always\n"
        "  contacts nobody\n  notification_period always\n  notification_interval 0\n"
        "  notifications_enabled 0\n}",
        "define service {\n  name bench-service\n  register 0\n"
        f"  check_interval {interval}\n  retry_interval {interval}\n  max_check_attempts 1\n"
        "  check_period always\n  contacts nobody\n  notification_period always\n"
        "  notification_interval 0\n  notifications_enabled 0\n  process_perf_data 1\n}",
    ]  # fmt: skip
    for i, addr in enumerate(fleet.addresses):
        parts.append(
            f"define host {{\n  use bench-host\n  host_name h{i:04d}\n  address {addr}\n}}"
        )
        parts.extend(
            f"define service {{\n  use bench-service\n  host_name h{i:04d}\n"
            f"  service_description {name}\n  check_command bench_{name}\n}}"
            for name, _ in checks
        )
    return "\n".join(parts) + "\n"


def run_as(login: str) -> str:
    """The account Nagios runs as: the fleet's login user when root, else the current user."""
    return login if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name


def write_config(root: Path, fleet: Fleet, *, interval: int, user: str) -> Layout:
    """A configuration in a new directory below ``root``, every file owned by ``user``."""
    layout = Layout(
        Path(tempfile.mkdtemp(prefix="nagios-", dir=root)),
        Path(tempfile.mkdtemp(prefix="ncm-")),
    )
    entry = pwd.getpwnam(user)
    group = grp.getgrgid(entry.pw_gid).gr_name
    for sub in ("tmp", "checkresults"):
        (layout.root / sub).mkdir()
    shutil.copyfile(fleet.client_key, layout.key)
    layout.key.chmod(0o600)
    layout.cfg.write_text(main_config(layout, user=user, group=group))
    layout.objects.write_text(objects_config(fleet, layout, interval=interval))
    for path in (layout.root, layout.control, *layout.root.rglob("*")):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    layout.root.chmod(0o755)
    return layout


def verify(layout: Layout) -> subprocess.CompletedProcess[str]:
    """``nagios4 -v``: Nagios's own check of the configuration, as it would load it."""
    return subprocess.run(
        [str(NAGIOS), "-v", str(layout.cfg)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def verify_counts(output: str) -> tuple[int, int]:
    """(warnings, errors) from ``nagios4 -v``'s totals; (-1, -1) when it printed none."""
    found = {}
    for line in output.splitlines():
        key, _, value = line.strip().partition(":")
        if key in ("Total Warnings", "Total Errors") and value.strip().isdigit():
            found[key] = int(value)
    return found.get("Total Warnings", -1), found.get("Total Errors", -1)


# -- the running Nagios ------------------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def masters(layout: Layout) -> list[int]:
    """The ssh control masters of ``layout``: ControlPersist retitles each one
    ``ssh: <ControlPath> [mux]`` once it has detached (clients keep their argv)."""
    prefix = f"ssh: {layout.control}/".encode()
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            text = cmdline.read_bytes()
            if text.startswith(prefix) and b"[mux]" in text:
                found.append(int(cmdline.parent.name))
    return found


@dataclass(frozen=True)
class Sample:
    at: float
    cpu_s: float
    """Main process and workers with their reaped children (the check processes)."""
    masters_cpu_s: float
    masters: int
    rss_mb: float
    masters_rss_mb: float
    offset: int
    """Bytes of complete lines in the perfdata file."""


@dataclass
class Nagios:
    proc: subprocess.Popen[bytes]
    layout: Layout

    def sample(self) -> Sample:
        if self.proc.poll() is not None:
            out = (self.layout.root / "nagios.out").read_text(errors="replace")[-3000:]
            raise SystemExit(f"nagios4 exited ({self.proc.returncode}):\n{out}")
        at = time.monotonic()
        cpu, rss = 0.0, 0.0
        for pid in (self.proc.pid, *children(self.proc.pid)):
            with contextlib.suppress(OSError):
                fields = _stat(pid)
                cpu += sum(int(f) for f in fields[11:15]) / CLK_TCK  # u, s, cu, cs time
                rss += _rss_mb(pid)
        found = masters(self.layout)
        masters_cpu, masters_rss = 0.0, 0.0
        for pid in found:
            with contextlib.suppress(OSError):
                fields = _stat(pid)
                masters_cpu += (int(fields[11]) + int(fields[12])) / CLK_TCK
                masters_rss += _rss_mb(pid)
        data = self.layout.perfdata.read_bytes() if self.layout.perfdata.exists() else b""
        end = data.rfind(b"\n") + 1
        return Sample(at, cpu, masters_cpu, len(found), rss, masters_rss, end)

    def results(self, before: Sample, after: Sample) -> list[tuple[str, str, str, str]]:
        """(state, host, service, output) of every check between the two samples."""
        with self.layout.perfdata.open("rb") as f:
            f.seek(before.offset)
            data = f.read(after.offset - before.offset)
        rows = []
        for line in data.decode(errors="replace").splitlines():
            state, host, service, output = [*line.split("\t", 3), "", "", ""][:4]
            rows.append((state, host, service, output))
        return rows

    def latency_ms(self) -> tuple[float, float] | None:
        """(average, maximum) of the services' latest check latency, from status.dat."""
        done = subprocess.run(
            [str(NAGIOSTATS), "-c", str(self.layout.cfg), "-m", "-d", "AVGACTSVCLAT,MAXACTSVCLAT"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        values = done.stdout.split()
        if done.returncode != 0 or len(values) != 2 or not all(v.isdigit() for v in values):
            return None
        return float(values[0]), float(values[1])


def start(layout: Layout, *, user: str) -> Nagios:
    """``nagios4 nagios.cfg`` in the foreground in its own process group, as ``user``."""
    checked = verify(layout)
    warnings, errors = verify_counts(checked.stdout)
    if checked.returncode != 0 or warnings != 0 or errors != 0:
        raise SystemExit(f"nagios4 -v {layout.cfg}:\n{checked.stdout[-3000:]}{checked.stderr}")
    entry = pwd.getpwnam(user)
    as_user: dict[str, object] = {}
    if os.geteuid() == 0:
        as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    env = {"PATH": "/usr/bin:/bin", "HOME": entry.pw_dir, "LANG": "C"}
    with (layout.root / "nagios.out").open("ab") as out:
        proc = subprocess.Popen(
            [str(NAGIOS), str(layout.cfg)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            **as_user,  # type: ignore[arg-type]
        )
    return Nagios(proc, layout)


def stop(nagios: Nagios) -> None:
    """Nagios's process group, then the ssh masters (they left it)."""
    proc = nagios.proc
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    for pid in masters(nagios.layout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


@dataclass(frozen=True)
class Figures:
    checks_per_s: float
    cpu_ms_per_check: float


def measure(
    root: Path,
    fleet: Fleet,
    *,
    interval: int,
    warmup: float,
    duration: float,
    opsmap_cpu_ms: float | None,
) -> Figures | None:
    """Run Nagios on ``fleet`` for ``warmup`` + ``duration`` seconds and print its figures
    (with the ratio to OpsMap's CPU per check when given); None when nagios4 is absent."""
    missing = [str(path) for path in (NAGIOS, PLUGINS / "check_by_ssh") if not path.exists()]
    if missing:
        print(f"\nNagios: skipped, {' and '.join(missing)} not installed (Debian: nagios4-core, "
              "monitoring-plugins-basic)")  # fmt: skip
        return None
    user = run_as(fleet.login)
    layout = write_config(root, fleet, interval=interval, user=user)
    try:
        nagios = start(layout, user=user)
        try:
            time.sleep(warmup)
            before = nagios.sample()
            time.sleep(duration)
            after = nagios.sample()
            rows = nagios.results(before, after)
            latency = nagios.latency_ms()
        finally:
            stop(nagios)
    finally:
        shutil.rmtree(layout.control, ignore_errors=True)
    elapsed = after.at - before.at
    own = after.cpu_s - before.cpu_s
    ssh = after.masters_cpu_s - before.masters_cpu_s
    cpu, count = own + ssh, max(len(rows), 1)
    figures = Figures(len(rows) / elapsed, 1000 * cpu / count)
    states = Counter(state for state, *_ in rows)
    per_service = Counter((host, service) for _, host, service, _ in rows)
    expected = len(fleet.addresses) * len(remote_checks(fleet.tcp_port))
    runs = sorted(per_service.values()) or [0]
    lag = f"latency avg {latency[0]:.0f} ms max {latency[1]:.0f} ms" if latency else "no latency"
    print(
        f"\n== Nagios {NAGIOS.name} ({len(fleet.addresses)} hosts, {expected / interval:.0f} "
        f"checks/s due, as {user}): {duration:.0f} s after {warmup:.0f} s warm-up"
    )
    print(
        f"Nagios: {figures.checks_per_s:.1f} checks/s, {figures.cpu_ms_per_check:.3f} ms CPU per "
        f"check ({100 * cpu / elapsed:.0f}% of a core: {1000 * own / count:.3f} ms Nagios and "
        f"its check processes, {1000 * ssh / count:.3f} ms ssh masters)  "
        f"RSS {after.rss_mb:.0f} MB main+workers, "
        f"{after.masters_rss_mb:.0f} MB in {after.masters} ssh masters "
        f"({before.masters} before)  {lag}  states {dict(states)}  "
        f"runs per service {runs[0]}-{runs[-1]} ({len(per_service)} of {expected} services)"
    )
    bad = {(s, host, service, out) for s, host, service, out in rows if s != "OK"}
    for state, host, service, output in sorted(bad)[:5]:
        print(f"  not OK: {host}/{service} {state}: {output[:200]!r}")
    if len(rows) < expected * duration / interval / 2:
        # Under half the due checks ran: the CPU went into starting ssh masters and checks
        # that never finished, so a CPU per check would be no figure (and no ratio).
        print(
            f"Nagios did not keep up: {len(rows)} checks finished of "
            f"{expected * duration / interval:.0f} due in the window; no CPU per check is "
            "given. Give it fewer hosts: --nagios-hosts N"
        )
        print(f"load average {os.getloadavg()}")
        return None
    if opsmap_cpu_ms is None:
        print("CPU per check ratio Nagios/OpsMap: no SQLite run in this invocation")
    else:
        print(
            f"CPU per check ratio Nagios/OpsMap (SQLite, 1 replica): "
            f"{figures.cpu_ms_per_check / opsmap_cpu_ms:.1f}"
        )
    print(f"load average {os.getloadavg()}")
    return figures
