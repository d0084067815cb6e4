"""Running one git command: a timeout on every call, no prompts, errors translated.

Every command runs against an explicit ``--git-dir`` (or none, for ``ls-remote``), never
the process's current directory, so the user's own checkout is never touched.
"""

from __future__ import annotations

import logging
from pathlib import Path

import git

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
_NOISE_PREFIXES = ("hint:", "warning:")


class GitRunner:
    """Runs git for one remote: ``remote`` (masked) names it in every error."""

    def __init__(self, *, remote: str, timeout_s: float) -> None:
        self.remote = remote
        self.timeout_s = timeout_s
        self._git = git.Git("/")

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
            status, stdout, stderr = self._git.execute(
                command,
                with_extended_output=True,
                with_exceptions=False,
                kill_after_timeout=self.timeout_s,
                stdout_as_string=False,
                strip_newline_in_stdout=False,
                env=GIT_ENV,
            )
        except (git.GitCommandError, OSError) as exc:
            raise error(self.remote, f"cannot run git: {_one_line(str(exc))}") from exc
        if status in ok:
            if stderr_too:
                return status, stdout + (
                    stderr if isinstance(stderr, bytes) else str(stderr).encode()
                )
            return status, stdout
        text = str(stderr)
        if text.startswith("Timeout:"):
            reason = f"git {args[0]} timed out after {self.timeout_s:g}s"
        else:
            reason = _reason(text) or f"git {args[0]} exited with status {status}"
        log.debug("git %s failed (%s): %s", args[0], status, mask_secrets(text))
        raise error(self.remote, reason)


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
