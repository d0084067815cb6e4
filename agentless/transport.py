"""The transport seam: run one shell command on one host, get a :class:`CommandResult`.

Like httpx's transports, one small protocol with several implementations:
:class:`agentless.ssh.SshTransport` (asyncssh), :class:`agentless.local.LocalTransport`
(``/bin/sh`` on this machine) and :class:`TransportRouter`, which picks one by
``host.transport``. Tests that need a fake put it here and nowhere else.

Contract of :meth:`Transport.run`:

- ``command`` is shell text, run by ``/bin/sh -c`` on the target with stdin at
  ``/dev/null``. stdout and stderr are returned separately, decoded as UTF-8 (invalid
  bytes replaced).
- **Output is bounded while it is read**: each stream keeps at most the transport's
  ``max_output`` bytes (:mod:`agentless.output`); the rest is counted
  (``stdout_dropped``, ``stderr_dropped``) and hashed (``stdout_sha256``…) as it arrives,
  never held, and :attr:`~agentless.result.CommandResult.truncated` says so.
- **Timeouts return, they do not raise.** When the command outlives ``timeout`` seconds,
  it is killed together with its children (its whole process group), and ``run``
  returns a result with ``timed_out=True``, ``exit_status=None`` and whatever it printed
  until then. :class:`~agentless.errors.CommandTimeout` is for callers that prefer an
  exception: ``raise_for_timeout(result)``.
- A host that cannot be reached raises :class:`~agentless.errors.HostUnreachable` (or its
  subclass :class:`~agentless.errors.HostKeyError`): the command was never sent. A
  connection that drops once the command was sent raises
  :class:`~agentless.errors.ConnectionLost` (``started``: it may have run). When the
  client stops waiting without an exit status, the result has ``abandoned=True``. Nothing
  from asyncssh or ``OSError`` leaks out; every error says whether the command may have
  started (:attr:`~agentless.errors.AgentlessError.started`).
"""

from __future__ import annotations

import re
import shlex
from typing import Protocol

from agentless.errors import CommandTimeout
from agentless.inventory import Host
from agentless.result import CommandResult

#: Exit statuses of a remote ``timeout`` that fired: coreutils' after TERM (124), and the
#: command's own death by TERM (143, busybox's ``timeout``) or by the KILL of ``-k`` (137).
REMOTE_TIMEOUT_STATUSES = frozenset({124, 137, 143})
#: Seconds between the TERM and the KILL that ``timeout -k`` sends to the process group.
KILL_AFTER_S = 1.0


class Inline(str):
    """Shell text a transport may run in a shell it keeps, without ``sh -c`` or ``timeout``.

    Only code marks text so (the probes in :mod:`agentless.checks.probes`), never a map:
    a plain ``str`` is always wrapped. The mark is a promise about the text: it uses only
    shell builtins on files that cannot block (``/proc``), runs every other external
    program under its own ``timeout`` that ends within the command's timeout (a program
    that only reads ``/proc`` files, with stdin from ``/dev/null``, cannot block either and
    needs none), starts no background job, and never runs ``exit``, ``cd`` or ``exec`` or
    changes the shell's options or traps. Such text cannot outlive its timeout by
    construction, so the ``timeout`` process (and the ``sh`` behind it) that
    :func:`remote_command` adds to every other command would only cost a process start
    or two per check.

    Any string operation on it (``+``, f-strings, ``.strip()``) gives a plain ``str``:
    text built from an :class:`Inline` is wrapped again unless marked anew.
    """

    __slots__ = ()


class Transport(Protocol):
    """Runs shell commands on hosts. Implementations are safe for concurrent use."""

    async def run(self, host: Host, command: str, *, timeout: float) -> CommandResult:  # noqa: ASYNC109 (seam)
        """Run ``command`` on ``host``; see the module docstring for the contract."""
        ...

    async def aclose(self) -> None:
        """Close every connection and process this transport holds."""
        ...

    @property
    def connections(self) -> int:
        """How many connections this transport holds open now (0 for one that keeps none)."""
        ...


def raise_for_timeout(result: CommandResult) -> CommandResult:
    """Return ``result``, or raise :class:`CommandTimeout` carrying it when it timed out."""
    if result.timed_out:
        raise CommandTimeout(result)
    return result


#: Words that only a shell understands: a command starting with one needs ``sh -c``.
_SHELL_WORDS = frozenset(
    [
        "!",
        ".",
        ":",
        "[",
        "{",
        "}",
        "alias",
        "bg",
        "break",
        "case",
        "cd",
        "command",
        "continue",
        "do",
        "done",
        "elif",
        "else",
        "esac",
        "eval",
        "exec",
        "exit",
        "export",
        "false",
        "fc",
        "fg",
        "fi",
        "for",
        "getopts",
        "hash",
        "if",
        "jobs",
        "local",
        "read",
        "readonly",
        "return",
        "set",
        "shift",
        "test",
        "then",
        "times",
        "trap",
        "true",
        "type",
        "ulimit",
        "umask",
        "unalias",
        "unset",
        "until",
        "wait",
        "while",
    ]
)
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_./:@%+,=-]+")
_GLOB_WORD = re.compile(r"[A-Za-z0-9_./:@%+,=*?\[\]-]+")


def _plain_argv(command: str) -> list[str] | None:
    """The words of ``command`` when it is one plain program call, else None.

    Plain means: no quoting, expansion, redirection, operator or keyword of any kind, a
    program name that is not a shell builtin, and arguments that hold at most glob
    characters (which the shell running the wrapper expands exactly as ``sh -c`` would).
    ``timeout`` can run such a command itself, which saves starting a shell.
    """
    words = command.split()
    if not words or words[0] in _SHELL_WORDS or not _PLAIN_WORD.fullmatch(words[0]):
        return None
    if "=" in words[0] or not all(_GLOB_WORD.fullmatch(word) for word in words[1:]):
        return None
    return words


def remote_command(command: str, *, timeout: float) -> str:
    """``command`` wrapped so the target host itself kills it after ``timeout`` seconds.

    coreutils ``timeout`` puts itself and the command in a new process group and, on
    expiry, signals the whole group (TERM, then KILL ``KILL_AFTER_S`` later), so children
    the command started die with it even when the client is gone. Shell text runs under
    ``/bin/sh -c`` and is quoted here, in this one place; a plain program call
    (:func:`_plain_argv`) is run by ``timeout`` itself, one process start fewer.
    :class:`Inline` text is only given ``/dev/null`` as stdin: the shell that runs the
    frame runs it itself (``{ ...; }`` does not fork).
    """
    if isinstance(command, Inline):
        return f"{{ {command}\n}} </dev/null"
    seconds = f"{max(timeout, 0.001):.3f}"
    argv = _plain_argv(command)
    program = " ".join(argv) if argv is not None else f"/bin/sh -c {shlex.quote(command)}"
    return f"timeout -k {KILL_AFTER_S:g} {seconds} {program} </dev/null"


def is_remote_timeout(exit_status: int | None, duration_s: float, timeout: float) -> bool:
    """True when ``exit_status`` is ``timeout``'s own and the command ran for its limit."""
    return exit_status in REMOTE_TIMEOUT_STATUSES and duration_s >= timeout


class TransportRouter:
    """A :class:`Transport` that sends each host to ``ssh`` or ``local`` by ``host.transport``."""

    def __init__(self, *, ssh: Transport, local: Transport) -> None:
        self._ssh = ssh
        self._local = local

    async def run(self, host: Host, command: str, *, timeout: float) -> CommandResult:  # noqa: ASYNC109 (seam)
        transport = self._local if host.transport == "local" else self._ssh
        return await transport.run(host, command, timeout=timeout)

    @property
    def connections(self) -> int:
        return self._ssh.connections + self._local.connections

    async def aclose(self) -> None:
        try:
            await self._ssh.aclose()
        finally:
            await self._local.aclose()
