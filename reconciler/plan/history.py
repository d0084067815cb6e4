"""Which request files are history: merged before the change under review.

A request runs once, when the commit that adds it is merged; afterwards its file is
history. A later change (a component renamed) can leave an old request naming what no
longer exists, and that must not fail every later pull request: the rules report it as
a warning (:data:`reconciler.rules.HISTORY`), while a request the change under review
adds is held to every rule. "The change under review" is, for

- ``opsmap plan --base B``: the commits after ``B`` (history: the requests ``B`` has);
- ``opsmap validate --base B``: likewise, for the files validate reads;
- ``opsmap validate`` without ``--base`` in a git work tree: what validate reads is the
  next commit when the work tree differs from ``HEAD`` in an OpsMap file (as at
  pre-commit time), so history is ``HEAD``'s requests; on a clean work tree (CI's
  checkout of a pull request's merge commit) it is ``HEAD`` itself, judged against its
  first parent, as ``opsmap run`` judges the requests a merge adds; outside git, none;
- ``opsmap run``: each merged commit's added requests, judged against its first parent.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.git.errors import GitSourceError
from reconciler.git.runner import GitRunner
from reconciler.repo.loader import FOLDER_KINDS, SETTINGS_FILE, YAML_SUFFIXES

REQUESTS = next(folder for folder, kind in FOLDER_KINDS.items() if kind == "request")
_OPSMAP_PATHS = (*FOLDER_KINDS, SETTINGS_FILE, SETTINGS_FILE.replace(".yaml", ".yml"))


class HistoryError(Exception):
    """``--base`` names no commit, or the repo is not in git: one line for the user."""


def request_history(root: Path, *, base: str | None, timeout_s: float = 60) -> frozenset[str]:
    """The request files (paths inside the map repo at ``root``) that are history.

    ``base`` None chooses as the module says; a ``base`` that git cannot resolve, or a
    ``root`` outside git with a ``base``, is a :class:`HistoryError`.
    """
    runner = GitRunner(remote=str(root), timeout_s=timeout_s, safe_directories=[root])
    where = ("-C", str(root))

    def git(*args: str, ok: tuple[int, ...] = (0,)) -> tuple[int, bytes]:
        try:
            return runner.run(*where, *args, git_dir=None, ok=ok)
        except GitSourceError as exc:
            raise HistoryError(str(exc)) from exc

    status, out = git("rev-parse", "--is-inside-work-tree", ok=(0, 128))
    if status != 0 or out.strip() != b"true":
        if base is not None:
            raise HistoryError(f"{root}: --base needs a git work tree")
        return frozenset()
    if base is None:
        _, changed = git(
            "status", "--porcelain", "-z", "--untracked-files=all", "--", *_OPSMAP_PATHS
        )
        base = "HEAD" if changed else "HEAD^1"
        given = False
    else:
        if not base or base.startswith("-") or "\n" in base:
            raise HistoryError(f"--base: not a revision: {base!r}")
        given = True
    status, out = git(
        "rev-parse", "--verify", "--quiet", "--end-of-options", f"{base}^{{commit}}",
        ok=(0, 1, 128),
    )  # fmt: skip
    if status != 0:
        if given:
            raise HistoryError(f"{root}: --base {base!r} names no commit")
        return frozenset()  # no commit yet, or a first commit: every request is new
    sha = out.decode().strip()
    _, listing = git("ls-tree", "-r", "-z", "--name-only", sha, "--", f"{REQUESTS}/")
    names = listing.decode("utf-8", "surrogateescape").split("\0")
    return frozenset(n for n in names if n and Path(n).suffix in YAML_SUFFIXES)


__all__ = ["HistoryError", "request_history"]
