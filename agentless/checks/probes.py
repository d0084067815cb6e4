"""The shell text each check type runs on its target host.

Only what a plain Linux host has is used: ``sh``, ``/proc``, coreutils (``cut``,
``head``, ``df``, ``sleep``, ``timeout``) and ``sed``. Optional tools are probed with
``command -v`` and their absence is reported, never installed:

- ``http``: ``curl``, else ``wget``; with neither the check is UNKNOWN
  ("neither curl nor wget on host").
- ``tcp`` on a loopback address (``127.0.0.1``, ``localhost``, ``::1``) with ``method:
  auto``: the LISTEN sockets on the port, listed from ``/proc/net/tcp{,6}`` by one
  ``sed`` that quits at the first socket that is not listening (the kernel lists
  listeners first; reading on would make it walk its whole socket hash, ~13 ms of system
  CPU per ``cat`` here). It needs no ``timeout`` (``/proc`` cannot block) and makes no
  connection. Measured here: 1.1 ms of CPU on the target instead of 1.8 ms for
  ``timeout`` + ``bash``.
- ``tcp`` anywhere else, or with ``method: connect``: a real connect from the target
  host, with ``bash``'s ``/dev/tcp`` (plain ``sh``/dash has none), else ``nc -z``, each
  under its own ``timeout``. With neither, a loopback address is still answered from
  the LISTEN sockets, read with the ``read`` builtin (a system call per byte: the last
  resort); any other address is UNKNOWN. A loopback check on a host without ``sed``
  is UNKNOWN and says to use ``method: connect``.
- ``process``: ``head -v -c 32`` reads the start of every ``/proc/<pid>/stat`` ("pid
  (comm) state ...", one ``read`` each). On a host with fewer than
  :data:`PROCESS_FILTER_MIN` processes (counted by the shell, with builtins) the whole
  listing is sent and the client counts the name; from there on one ``sed`` keeps the
  pid of each live process (zombies and dead ones do not count) whose comm is exactly
  the name, so only the matches cross the wire (23 bytes instead of 170 KB at ~3,000
  processes). The two count alike, and no comm can forge a record for either
  (:func:`_comm_filter`, :func:`~agentless.checks.parsers._count_comm`). Three designs,
  measured here (a PID namespace holding ~300 or ~3,000 processes, one real sshd, 8
  interleaved rounds of 30-60 checks, medians of runs; target is sshd and all below
  it)::

      CPU per check, ms                ~300 processes      ~3,000 processes
                                       target   client     target   client
      head alone, the client scans     4.7      0.78       47       5.2
      one sed over the files           5.7      0.57       53       0.93
      head | sed (from the threshold)  7.7      0.60       49-51    0.82-0.87

  (shell only: 5.5, 6.9, 7.9 ms at ~300; 48, 55, 55 ms at ~3,000; runs vary by 10-20%
  on this shared machine.) ``head | sed`` pays for one process more than ``head`` alone
  (GNU sed's start, with its four libraries, and the group's fork; the filtering itself
  took 1 ms of sed's CPU over a 3,000-file listing): +60% of the host's CPU at ~300
  processes to save the client 0.2 ms, which an agentless tool does not ask of a
  production host, hence ``head`` alone there. It is kept for the
  hosts where the check costs most, where it is the cheaper of the two filters (a lone
  ``sed`` reads each whole file, and to its end: one more ``read`` each), and for its
  failures: a process that ends during the listing costs head one file, where GNU sed
  stopped at the failed read (status 4) and the whole listing had to be run again. The
  reconciler's saving is the same either way. When the name could be one of the
  probe's own programs (``sh``, ``sed``...), the probe lists every process with ``cut``
  and its own pids so that they are not counted; for names longer than the kernel's
  15-character ``comm``, ``head -v`` adds the start of each ``cmdline``.
- ``native:memory``, ``tcp`` and ``process`` are :class:`~agentless.transport.Inline`:
  sh builtins, programs that only read ``/proc`` (``head``) or the output of one
  (``sed``), or one program under its own ``timeout``, which an SSH shell channel runs
  without starting a shell or a ``timeout`` of its own. Measured on the benchmark
  machine: memory 0.07 ms of CPU on the target instead of 2.2 ms (``timeout`` + ``cat``),
  tcp ~2.5 ms instead of 5.9 ms (``timeout`` + ``sh`` before ``timeout`` + ``bash``).

Probes print raw observations with ``@``-prefixed section markers; the pure parsers in
:mod:`agentless.checks.parsers` turn them into a :class:`~agentless.result.CheckOutcome`.
Every value from a check's config that reaches shell text goes through :func:`_arg`, the
one place where quoting happens (a process name is first made a regex by :func:`_bre`).
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
from agentless.transport import KILL_AFTER_S, Inline

#: Addresses a tcp check resolves from /proc/net/tcp* instead of connecting.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: Longest name the kernel keeps in /proc/<pid>/comm.
COMM_LEN = 15
#: Programs a probe itself runs: a process check for one of them lists the probe's own
#: pids too, so that they are not counted.
PROBE_PROGRAMS = frozenset({"sh", "dash", "bash", "timeout", "cut", "head", "sed"})
#: Share of the check's timeout given to an inner connect/fetch, so that a slow target
#: is reported by the probe (CRITICAL) before the check itself times out (UNKNOWN).
_INNER_SHARE = 0.8


def _arg(value: object) -> str:
    """The single place where a config value becomes shell text."""
    return shlex.quote(str(value))


def _bre(value: str) -> str:
    """``value`` as a POSIX basic regular expression that matches exactly ``value``, for a
    ``sed`` address or ``s`` command delimited by ``/``: the one place where a config value
    becomes regex text (it is shell-quoted afterwards, by :func:`_arg`).

    A backslash makes ``\\ . [ * ^ $`` and the delimiter literal; every other character
    is literal in a BRE as it is (``]``, ``+``, ``?``, ``(``, ``{`` included; only their
    backslashed forms are operators, and no backslash is left before them). A NUL, which
    shell text cannot carry and no ``comm`` holds, becomes ``\\n``: sed's pattern space
    holds one line, so it never matches.
    """
    return "".join(
        "\\n" if char == "\0" else f"\\{char}" if char in "\\.[*^$/" else char for char in value
    )


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


def _listen_table(config: TcpConfig) -> str:
    """``sed`` lists the LISTEN sockets on the port from ``/proc/net/tcp{,6}``.

    Each printed line is ``ADDRESS:PORT ACCEPT-QUEUE`` (hex, as the kernel writes them).
    ``sed`` quits at the first socket that is not listening (the kernel lists listeners
    first), so a busy host's established connections are never walked. tcp6 is read
    only when tcp4 has no listener that takes an IPv4 loopback connect; for ``::1`` only
    tcp6 is read. A host without IPv6 has no tcp6: that file's absence is not an error
    (for ``::1`` it is: ``sed`` says so, and ``@err`` carries its status).
    """
    port = f"{config.port:04X}"
    script = (
        "1d;/^ *[0-9]*: [0-9A-F]*:[0-9A-F]* [0-9A-F]*:[0-9A-F]* 0A /!q;"
        f"s/^ *[0-9]*: \\([0-9A-F]*:{port}\\) [^ ]* 0A [0-9A-F]*:\\([0-9A-F]*\\) .*/\\1 \\2/p"
    )
    v6 = 'LC_ALL=C sed -n "$s" /proc/net/tcp6 </dev/null'
    text = f"s={_arg(script)}; echo @listen\n"
    if config.host == "::1":
        return text + f'{v6} || echo "@err $?"'
    return text + (
        'l=$(LC_ALL=C sed -n "$s" /proc/net/tcp </dev/null) || echo "@err $?"\n'
        'echo "$l"\n'
        f'case $l in *0100007F:{port}" "*|*00000000:{port}" "*) ;; *) {v6} 2>/dev/null;; esac'
    )


def _proc_listeners(config: TcpConfig) -> str:
    """Builtin-only listing of the LISTEN sockets on the port, for a loopback target on a
    host without ``sed`` (``read`` takes a system call per byte: the slow last resort).

    tcp6 is read only when tcp4 has no listener that accepts an IPv4 loopback connect
    (``0.0.0.0`` or ``127.0.0.1``): a wildcard ``::`` socket accepts IPv4 too.
    """
    v4_done = "0100007F:*|00000000:*" if config.host != "::1" else "NONE"
    return (
        "  echo @proc; hit=\n"
        "  for f in /proc/net/tcp /proc/net/tcp6; do\n"
        "    while read -r _ a _ s _; do\n"
        "      case $s in\n"
        '        0A) case $a in *:"$x")\n'
        f'          echo "$a $s"; case $a in {v4_done}) hit=1;; esac;; esac;;\n'
        '        st) echo "$a $s";;\n'
        "        *) break;;\n"
        "      esac\n"
        '    done <"$f"\n'
        '    if [ -n "$hit" ]; then break; fi\n'
        "  done\n"
    )


def _connect(config: TcpConfig, *, timeout_s: float) -> str:
    """A real connect (bash's ``/dev/tcp``, else ``nc -z``), each under its own ``timeout``."""
    limit = _inner_timeout(timeout_s)
    kill = f"-k {KILL_AFTER_S:g}"
    fallback = _proc_listeners(config) if config.host in LOOPBACK_HOSTS else "  echo @none\n"
    return (
        f"h={_arg(config.host)}; p={_arg(config.port)}; x={_arg(f'{config.port:04X}')}\n"
        "if command -v bash >/dev/null 2>&1; then\n"
        "  echo @bash\n"
        f'  LC_ALL=C timeout {kill} {limit} bash -c \'exec 3<>"/dev/tcp/$0/$1"\' "$h" "$p"\n'
        '  echo "@rc $?"\n'
        "elif command -v nc >/dev/null 2>&1; then\n"
        "  echo @nc\n"
        f'  timeout {kill} {limit} nc -z -w {limit} "$h" "$p"\n'
        '  echo "@rc $?"\n'
        "else\n"
        f"{fallback}"
        "fi"
    )


def tcp_command(config: TcpConfig, *, timeout_s: float) -> str:
    """The socket table for a loopback port (``method: auto``), else a real connect.

    The socket-table probe has no fallback in its text: every line of a frame is parsed
    by the target's shell on every run (a connect fallback there cost 0.2 ms per check),
    and a host without ``sed`` is told to use ``method: connect``.
    """
    if config.method == "connect" or config.host not in LOOPBACK_HOSTS:
        return Inline(_connect(config, timeout_s=timeout_s))
    return Inline(_listen_table(config))


#: The first line of a stat file that ``head -c`` keeps: long enough to hold the end of
#: any record's comm and its state ("pid (comm) S " is at most 7 + 2 + 15 + 4 = 28 bytes).
STAT_HEAD = 32


def _comm_filter(name: str) -> str:
    """The ``sed -n`` script that reads ``head -v -c 32``'s listing of the stat files and
    prints ``@proc`` at its first header, then the pid of each live process whose comm is
    exactly ``name``, then head's ``@head`` status line (the last line).

    A comm may hold newlines and parentheses, so a process could print what looks like
    another record: comm ``"x\\n1 (sshd"`` makes the line ``1 (sshd) S ...`` after its own
    ``900 (x``. A record counts only when all of these hold, which no such text can meet:

    - it is the one line after a header (``N`` joins the two; every other line is
      dropped). A header (``==> /proc/PID/stat <==``, 20 characters or more, no ``)``)
      cannot be forged: a line of a comm holds at most 13 characters of it, and a line
      that goes on past the comm holds its ``)``.
    - it is exactly 32 characters, all of head's bytes of the file: the first 32 bytes
      of a stat file hold no newline (a comm's 15 bytes end by byte 24), so a comm with
      a newline shortens it. It begins with the header's pid (a backreference, tried
      last and only on a match: the line after a header is its file's first anyway).
    - after ``(name) S `` with a live state (not ``Z``, ``X``, ``x``: the old parser's
      dead states) it holds only numbers, spaces and ``-``, as every record's next
      fields do. The record's own ``)`` (the last) lies within the 32 bytes, so the
      matched one is it: a comm ``"sshd) R 1 2"`` does not count as ``sshd`` (the
      client's scan of the whole listing, which once looked only at the text after
      ``(sshd) `` and counted it, now holds a record to the same two tests).

    This holds for comms of at most 15 bytes and pids of at most 7 digits (the
    kernel's ``TASK_COMM_LEN`` and ``PID_MAX_LIMIT``). The longer name a kernel worker
    shows (its workqueue's) is the kernel's text and is never a 15-character ``name``
    followed by ``) S``. The line after the last file is head's status, printed by the
    probe; only the last line of the stream is let through as one.
    """
    record = f"[0-9]* ({_bre(name)}) [^ZXx] [-0-9 ]*$"
    return (
        "/^==> \\/proc\\/[0-9]*\\/stat <==$/!{${/^@head [0-9]*$/p;};d;}\n"
        "1{x;s/^/@proc/p;x;}\n"
        "$!N\n"
        f"/\\n{record}/!d\n"
        f"/\\n.\\{{{STAT_HEAD}\\}}$/!d\n"
        "s/^==> \\/proc\\/\\([0-9]*\\)\\/stat <==\\n\\1 .*/\\1/p"
    )


#: Processes from which the host filters its listing (``head | sed``); below it the whole
#: listing (``head`` alone) is sent and the client counts. From the figures in the module
#: docstring (measured at ~300 and ~3,000 only; in between is interpolated): the filter
#: costs the host about the same 2-4 ms per check whatever the count (sed's start and a
#: fork: +3 ms at ~300, +2-4 at ~3,000), while sending the whole listing costs the client
#: ~0.0015 ms per process ((5.2 - 0.85) ms over ~3,000), so the client's saving grows
#: with the host: 0.2 ms at ~300 (for +60% of the host's CPU), ~2 ms at 1,500 (for ~12%
#: of a ~24 ms check), 4.4 ms at ~3,000 (for 4-8%, within the runs' 10-20% spread). CPU
#: for CPU the two meet at ~1,800-2,100 processes; the threshold is set below that
#: because the client's milliseconds are shared by the whole fleet (one reconciler for
#: thousands of hosts: they bound how many it serves) and so are its received bytes
#: (~85 KB per check at 1,500), where the host's are its own and a small share there.
#: It is 1,000, not 1,500: the whole listing (55-61 bytes a process, with pids of up to
#: 7 digits) must fit the transport's default output cap of 64 KiB
#: (:data:`~agentless.output.DEFAULT_MAX_OUTPUT`), past which a check is UNKNOWN; at
#: 1,000-1,500 processes the host pays the filter's ~12-20% for it.
PROCESS_FILTER_MIN = 1000

#: The kept shell's function that lists the stat files it is given (its own positional
#: parameters: the caller's, the kept shell's, are the shell's again when it returns).
_LISTER = "opsmap_ps"


def process_command(config: ProcessConfig, *, filter_min: int | None = None) -> str:
    """Live processes named ``config.name``, by one of two listings chosen on the host by
    how many stat files there are (``filter_min``, default :data:`PROCESS_FILTER_MIN`).

    The shell expands ``/proc/[0-9]*/stat`` once, as the arguments of a function
    (:data:`_LISTER`), and counts them with ``$#`` and ``[`` (builtins: no process). The
    function, not ``set --``: the Inline frame runs in the kept shell itself, whose
    positional parameters ``set --`` would replace for every later command of the
    channel (and keep a few thousand words alive); a function's arguments are its own and
    the shell's come back when it returns. What stays is the function's definition,
    redefined by every check; a map's command runs in its own ``sh -c``, which does not
    see it. The first line is the path taken, printed by ``echo`` before anything
    is listed, so no process name can forge it:

    - ``@all`` (fewer than ``filter_min``): ``head -v -c 32`` of every file, counted by
      the client (:func:`~agentless.checks.parsers._count_comm`). head's status is the
      frame's: 1 when a process ended during the listing (it says so on stderr and lists
      the others), which still counts. No ``/proc``: the unexpanded glob is one
      argument, head fails on it and lists nothing.
    - ``@filtered``: head's listing goes through one ``sed`` that keeps the matching
      pids (:func:`_comm_filter`). In dash a pipeline's status is its last command's, so
      head's own status is printed into the stream (``@head``): 127 says it is missing,
      1 that a file failed to open or read, and the listing still counts. ``@rc`` after
      the pipeline carries sed's status (127: no sed). No ``@proc`` means head listed no
      stat file at all.
    """
    if len(config.name) <= COMM_LEN and config.name not in PROBE_PROGRAMS:
        least = PROCESS_FILTER_MIN if filter_min is None else filter_min
        head = f'LC_ALL=C head -v -c {STAT_HEAD} -- "$@" </dev/null'
        # Programs reading only /proc, or stdin from one: no `timeout` process needed.
        return Inline(
            f"{_LISTER}() {{\n"
            f"if [ $# -lt {int(least)} ]; then echo @all; {head}\n"
            f"else echo @filtered; {{ {head}; printf '\\n@head %s\\n' $?; }} | "
            f'LC_ALL=C sed -n {_arg(_comm_filter(config.name))} || echo "@rc $?"\n'
            f"fi\n}}\n{_LISTER} /proc/[0-9]*/stat"
        )
    lines = [
        'echo "@self $$ $PPID"',
        "cd /proc || exit 3",
        "cut -c 1-32 -- [0-9]*/stat 2>/dev/null",
    ]
    if len(config.name) > COMM_LEN:
        lines += ["echo @cmdline", "head -v -c 512 -- [0-9]*/cmdline 2>/dev/null"]
    lines.append("echo; echo @end")
    return "\n".join(lines)


#: The first lines of /proc/meminfo, up to ``Cached`` (after MemAvailable and Buffers).
_MEMINFO = Inline(
    'while read -r k v _; do echo "$k $v"; case $k in Cached:) break;; esac; done </proc/meminfo'
)


def memory_command(_config: MemoryConfig) -> str:
    return _MEMINFO


def cpu_command(config: CpuConfig) -> str:
    sample = 'read -r l </proc/stat; echo "$l"'
    return f"{sample}; sleep {_arg(f'{config.sample_secs:g}')}; {sample}"


def disk_space_command(config: DiskSpaceConfig, *, timeout_s: float) -> str:
    """``df`` in the C locale (what the parser reads; loading another costs a millisecond)."""
    limit = _inner_timeout(timeout_s)
    return Inline(
        f"LC_ALL=C timeout -k {KILL_AFTER_S:g} {limit} df -P -k -- {_arg(config.path)} </dev/null"
    )


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
            return disk_space_command(config, timeout_s=timeout_s)
        case CommandConfig():
            return command_command(config)
    raise TypeError(f"no probe for {type(config).__name__}")
