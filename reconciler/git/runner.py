"""Running one git command: a timeout on every call, no prompts, errors translated.

Every command runs against an explicit ``--git-dir`` (or none, for ``ls-remote``), never
the process's current directory, so the user's own checkout is never touched. Git gets
the environment of :func:`git_environment`: the allow-list of :mod:`agentless.childenv`
(never ``OPSMAP_*`` or a variable marked secret) plus :data:`GIT_ENV`; each command runs
in its own session, killed with everything it started when it runs out of time.

A repository the operator names (``opsmap run --repo /srv/maps``, ``opsmap plan --repo .``)
may belong to another user, which git refuses ("dubious ownership") unless told it is
safe: :func:`safe_directory_args` says so on the command line for that one path, never
for a path a revision names. Git's own refusal goes to the user whole (masked, bounded),
its hint included.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from agentless.childenv import GIT_EXTRA, child_environment
from reconciler.git.errors import GitSourceError, RemoteUnreachable, mask_secrets
from reconciler.inert import for_log

log = logging.getLogger(__name__)

SSH_COMMAND = "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes"
"""Never ask for a password or a passphrase, never accept a host key that is not known."""
GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_SSH_COMMAND": SSH_COMMAND,
    # A path is a path: no glob or ``:(magic)`` in a file name from a repo.
    "GIT_LITERAL_PATHSPECS": "1",
}
_MAX_REASON = 2000
_KIND = re.compile(r"[a-z]+:\s")
_FIXED = {**GIT_ENV, "LC_ALL": "C", "LANGUAGE": "C"}


def git_environment() -> dict[str, str]:
    """What git runs with: the child allow-list, git's extras, and :data:`GIT_ENV`."""
    return child_environment(GIT_EXTRA, fixed=_FIXED)


def safe_directory_args(path: Path) -> tuple[str, ...]:
    """``-c safe.directory=…`` for the repository at ``path`` (a work tree or a git dir).

    Git compares the safe directory with the git dir it found (``P/.git`` for a work
    tree, ``P`` for a bare repo), so both are named. The operator chose this path: a pull
    request cannot change it, nor the repository's own config (that is not in a tree).
    """
    real = os.path.realpath(path)
    return ("-c", f"safe.directory={real}", "-c", f"safe.directory={os.path.join(real, '.git')}")


def upload_pack_args(path: Path | None) -> tuple[str, ...]:
    """``--upload-pack`` for ``ls-remote`` / ``fetch`` from the local repository ``path``
    (nothing for a network remote, None).

    Git clears ``-c`` settings for the ``upload-pack`` it starts on a local repository, so
    the safe directory is passed on that command itself (a shell line: quoted here).
    """
    return _pack_args("upload-pack", path)


def receive_pack_args(path: Path | None) -> tuple[str, ...]:
    """``--receive-pack`` for ``push`` to the local repository ``path``, likewise."""
    return _pack_args("receive-pack", path)


def _pack_args(program: str, path: Path | None) -> tuple[str, ...]:
    if path is None:
        return ()
    return (f"--{program}", shlex.join(["git", *safe_directory_args(path), program]))


class GitRunner:
    """Runs git for one remote: ``remote`` (masked) names it in every error.

    ``safe_directories`` (see :func:`safe_directory_args`) go before every command.
    """

    def __init__(
        self, *, remote: str, timeout_s: float, safe_directories: Sequence[Path] = ()
    ) -> None:
        self.remote = remote
        self.timeout_s = timeout_s
        self._config = tuple(a for p in safe_directories for a in safe_directory_args(p))

    def run(
        self,
        *args: str,
        git_dir: Path | None,
        ok: tuple[int, ...] = (0,),
        network: bool = False,
        stderr_too: bool = False,
    ) -> tuple[int, bytes]:
        """Run ``git [--git-dir=DIR] ARGS``; return the exit status (one of ``ok``) and stdout.

        With ``stderr_too``, stderr follows stdout in what is returned (``verify-commit``
        reports there).

        A failure raises :class:`RemoteUnreachable` when ``network`` is set (the command
        talked to the remote), else :class:`GitSourceError`.
        """
        git_dir_args = ("--git-dir", str(git_dir)) if git_dir else ()
        command = ["git", *self._config, *git_dir_args, *args]
        error = RemoteUnreachable if network else GitSourceError
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd="/",
                env=git_environment(),
                start_new_session=True,
            )
        except OSError as exc:
            raise error(self.remote, f"cannot run git: {_one_line(str(exc))}") from exc
        try:
            stdout, stderr = proc.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired as exc:
            kill_session(proc)
            reason = f"git {args[0]} timed out after {self.timeout_s:g}s"
            raise error(self.remote, reason) from exc
        finally:
            if proc.returncode is None:
                kill_session(proc)
        status = proc.returncode
        if status in ok:
            return status, stdout + stderr if stderr_too else stdout
        text = stderr.decode("utf-8", "replace")
        reason = _reason(text) or f"git {args[0]} exited with status {status}"
        log.debug("git %s failed (%s): %s", args[0], status, mask_secrets(text))
        raise error(self.remote, reason)


def kill_session(proc: subprocess.Popen[bytes]) -> None:
    """Kill git and whatever it started (ssh, remote helpers), close our ends of its
    pipes, and reap it: for a command that timed out, and for the long-lived blob reader."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _reason(stderr: str) -> str:
    """Git's whole message on one line (a ``fatal:`` or ``hint:`` line after a ``; ``, a
    line that goes on the one before after a space), credentials masked, cut past
    :data:`_MAX_REASON` characters.

    The first ``fatal:`` / ``error:`` prefix goes: the message says what failed.
    """
    lines = [" ".join(line.split()) for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    for prefix in ("fatal:", "error:"):
        lines[0] = lines[0].removeprefix(prefix).strip()
    text = lines[0]
    for line in lines[1:]:  # a line of its own kind (``hint: …``) after a ``;``
        text += ("; " if _KIND.match(line) else " ") + line
    return _one_line(text)


def _one_line(text: str) -> str:
    line = for_log(" ".join(mask_secrets(text).split()))
    return line if len(line) <= _MAX_REASON else line[: _MAX_REASON - 1] + "…"
