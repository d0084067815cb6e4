"""The shell text each check type runs on its target host.

Only what a plain Linux host has is used: ``sh``, ``/proc`` and coreutils (``cat``,
``head``, ``df``, ``sleep``, ``timeout``). Optional tools are probed with ``command -v``
and their absence is reported, never installed:

- ``http``: ``curl``, else ``wget``; with neither the check is UNKNOWN
  ("neither curl nor wget on host").
- ``tcp``: a real connect from the target host, with ``bash``'s ``/dev/tcp`` (plain
  ``sh``/dash has none), else ``nc -z``, bounded by coreutils ``timeout``. With neither,
  a loopback address (``127.0.0.1``, ``localhost``, ``::1``) is still answered from the
  LISTEN sockets in ``/proc/net/tcp{,6}`` (reduced to distinct "local-address state"
  pairs with ``tr``/``cut``/``sort -u``); any other address is UNKNOWN. /proc is not the
  first choice because the kernel walks its whole socket hash to print those files:
  about 13 ms of system CPU per read on the benchmark machine, against ~1 ms for bash.
- ``process``: ``cut -c1-32`` prints the start of every ``/proc/<pid>/stat`` ("pid
  (comm) state ..."; zombies do not count) and, for names longer than the kernel's
  15-character ``comm``, ``head -v`` adds the start of each ``cmdline``; the parser
  does the matching.

Probes print raw observations with ``@``-prefixed section markers; the pure parsers in
:mod:`agentless.checks.parsers` turn them into a :class:`~agentless.result.CheckOutcome`.
Every value from a check's config that reaches shell text goes through :func:`_arg`, the
one place where quoting happens.
"""

from __future__ import annotations

import shlex

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

#: Addresses a tcp check resolves from /proc/net/tcp* instead of connecting.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: Longest name the kernel keeps in /proc/<pid>/comm.
COMM_LEN = 15
#: Share of the check's timeout given to an inner connect/fetch, so that a slow target
#: is reported by the probe (CRITICAL) before the check itself times out (UNKNOWN).
_INNER_SHARE = 0.8


def _arg(value: object) -> str:
    """The single place where a config value becomes shell text."""
    return shlex.quote(str(value))


def _inner_timeout(timeout_s: float) -> str:
    return f"{max(0.5, timeout_s * _INNER_SHARE):.1f}"


def http_command(config: HttpConfig, *, timeout_s: float) -> str:
    limit = _inner_timeout(timeout_s)
    curl_method = {"GET": "", "HEAD": " -I", "POST": " -X POST -d ''"}[config.method]
    wget_method = {"GET": "", "HEAD": " --spider", "POST": " --post-data=''"}[config.method]
    insecure_curl = " -k" if config.insecure else ""
    insecure_wget = " --no-check-certificate" if config.insecure else ""
    return (
        f"url={_arg(config.url)}\n"
        "if command -v curl >/dev/null 2>&1; then\n"
        "  echo @curl\n"
        f"  curl -sS -o /dev/null -w '%{{http_code}}\\n' --max-time {limit}"
        f'{curl_method}{insecure_curl} "$url"\n'
        '  echo "@rc $?"\n'
        "elif command -v wget >/dev/null 2>&1; then\n"
        "  echo @wget\n"
        f'  wget -S -O /dev/null -T {limit}{wget_method}{insecure_wget} "$url" 2>&1\n'
        '  echo "@rc $?"\n'
        "else\n"
        "  echo @none\n"
        "fi"
    )


def tcp_command(config: TcpConfig, *, timeout_s: float) -> str:
    limit = _inner_timeout(timeout_s)
    fallback = (
        "  echo @proc\n"
        "  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | tr -s ' ' | cut -d ' ' -f 3,5 | sort -u\n"
        if config.host in LOOPBACK_HOSTS
        else "  echo @none\n"
    )
    return (
        f"h={_arg(config.host)}; p={_arg(config.port)}\n"
        "if command -v bash >/dev/null 2>&1; then\n"
        "  echo @bash\n"
        f'  timeout {limit} bash -c \'exec 3<>"/dev/tcp/$0/$1"\' "$h" "$p"\n'
        '  echo "@rc $?"\n'
        "elif command -v nc >/dev/null 2>&1; then\n"
        "  echo @nc\n"
        f'  timeout {limit} nc -z -w {limit} "$h" "$p" </dev/null\n'
        '  echo "@rc $?"\n'
        "else\n"
        f"{fallback}"
        "fi"
    )


def process_command(config: ProcessConfig) -> str:
    lines = [
        'echo "@self $$ $PPID"',
        "cd /proc || exit 3",
        "cut -c 1-32 -- [0-9]*/stat 2>/dev/null",
    ]
    if len(config.name) > COMM_LEN:
        lines += ["echo @cmdline", "head -v -c 512 -- [0-9]*/cmdline 2>/dev/null"]
    lines.append("echo; echo @end")
    return "\n".join(lines)


def memory_command(_config: MemoryConfig) -> str:
    return "cat /proc/meminfo"


def cpu_command(config: CpuConfig) -> str:
    return f"head -n 1 /proc/stat; sleep {_arg(f'{config.sample_secs:g}')}; head -n 1 /proc/stat"


def disk_space_command(config: DiskSpaceConfig) -> str:
    return f"df -P -k -- {_arg(config.path)}"


def command_command(config: CommandConfig) -> str:
    """A command check is shell text by design, written and reviewed in the map."""
    return config.command


def probe_command(config: ProbeConfig, *, timeout_s: float) -> str:
    """The shell text to run on the target host for a check with ``config``."""
    match config:
        case HttpConfig():
            return http_command(config, timeout_s=timeout_s)
        case TcpConfig():
            return tcp_command(config, timeout_s=timeout_s)
        case ProcessConfig():
            return process_command(config)
        case MemoryConfig():
            return memory_command(config)
        case CpuConfig():
            return cpu_command(config)
        case DiskSpaceConfig():
            return disk_space_command(config)
        case CommandConfig():
            return command_command(config)
    raise TypeError(f"no probe for {type(config).__name__}")
