"""Running one git command: a timeout on every call, no prompts, errors translated.

Every command runs against an explicit ``--git-dir`` (or none, for ``ls-remote``), never
the process's current directory, so the user's own checkout is never touched. Git gets
the environment of :func:`git_environment`: the allow-list of :mod:`agentless.childenv`
(never ``OPSMAP_*`` or a variable marked secret) plus :data:`GIT_ENV`; each command runs
in its own session, killed with everything it started when it runs out of time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from pathlib import Path

from agentless.childenv import GIT_EXTRA, child_environment
from reconciler.git.errors import GitSourceError, RemoteUnreachable, mask_secrets

log = logging.getLogger(__name__)

SSH_COMMAND = "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes"
"""Never ask for a password or a passphrase, never accept a host key that is not known."""
GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_SSH_COMMAND": SSH_COMMAND,
    # A path is a path: no glob or ``:(magic)`` in a file name from a repo.
    "GIT_LITERAL_PATHSPECS": "1",
}
_MAX_REASON = 300
_FIXED = {**GIT_ENV, "LC_ALL": "C", "LANGUAGE": "C"}


def git_environment() -> dict[str, str]:
    """What git runs with: the child allow-list, git's extras, and :data:`GIT_ENV`."""
    return child_environment(GIT_EXTRA, fixed=_FIXED)


_NOISE_PREFIXES = ("hint:", "warning:")


class GitRunner:
    """Runs git for one remote: ``remote`` (masked) names it in every error."""

    def __init__(self, *, remote: str, timeout_s: float) -> None:
        self.remote = remote
        self.timeout_s = timeout_s

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
        command = ["git", *(("--git-dir", str(git_dir)) if git_dir else ()), *args]
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
    """The line of git's stderr that says what went wrong, without its ``fatal:`` prefix."""
    for line in stderr.splitlines():
        line = line.strip()
        if not line or line.startswith(_NOISE_PREFIXES):
            continue
        for prefix in ("fatal:", "error:"):
            line = line.removeprefix(prefix).strip()
        return _one_line(line)
    return ""


def _one_line(text: str) -> str:
    line = " ".join(mask_secrets(text).split())
    return line if len(line) <= _MAX_REASON else line[: _MAX_REASON - 1] + "…"
