"""``opsmap request ACTION MAP/COMPONENT --reason TEXT``: write an action request file.

The file, ``requests/<UTC date>-<action>-<component>-<random>.yaml``, holds the map, the
component (or ``*``), the action, the reason and optionally the hosts, written with
``yaml.safe_dump`` so that any reason (quotes, newlines, ``$()``…) reads back exactly. It
is checked against the working tree at ``--repo`` the way ``opsmap validate`` checks
request files: the map, the component, the action and the hosts must exist.

With ``--branch NAME``: creates ``NAME`` from the current HEAD, **switches to it** (as
``git switch -c NAME`` does: uncommitted changes stay as they are, in the working tree and
the index) and commits only the request file there, with the user's own git identity and
configuration. The next step, printed, is ``git push -u origin NAME`` and a pull request.
If the commit fails, the file is removed and the user is put back on the branch they were
on, with ``NAME`` deleted.

Exit 0 and the file's path on stdout; exit 2 with a one-line reason on any mistake.
"""

from __future__ import annotations

import argparse
import datetime
import secrets
import subprocess
import sys
from pathlib import Path

import yaml
from pydantic import ValidationError

from reconciler.cli import EXIT_OK, usage_error
from reconciler.findings import Severity, format_text
from reconciler.model.request import Request
from reconciler.model.vocabulary import ALL_COMPONENTS
from reconciler.repo.explain import explain_input
from reconciler.repo.loader import RepoFile, load_repo, read_tree
from reconciler.rules import check_repo

REQUESTS_DIR = "requests"
GIT_TIMEOUT_S = 60.0


class RequestError(Exception):
    """A mistake in the arguments or the repo, told to the user as it is (exit 2)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write requests/<date>-<action>-<component>-<random>.yaml asking for ACTION on "
        "MAP/COMPONENT (COMPONENT '*': the whole map, for start, stop or restart), checked "
        "against the repo. With --branch, commit it on a new branch and switch to it."
    )
    parser.add_argument("action", metavar="ACTION", help="an action the component declares")
    parser.add_argument("target", metavar="MAP/COMPONENT", help="COMPONENT may be '*'")
    parser.add_argument("--reason", required=True, metavar="TEXT", help="why (required)")
    parser.add_argument(
        "--hosts", metavar="H1,H2", help="only these inventory hosts (default: all matching)"
    )
    parser.add_argument("--repo", type=Path, default=Path("."), metavar="PATH")
    parser.add_argument(
        "--branch",
        metavar="NAME",
        help="create branch NAME from HEAD, switch to it and commit the file there",
    )
    parser.add_argument("--message", metavar="MSG", help="commit message (with --branch)")


def run(args: argparse.Namespace) -> int:
    try:
        path = _request(args)
    except RequestError as exc:
        return usage_error(str(exc))
    print(path)
    if args.branch:
        print(f"next: git push -u origin {args.branch}, then open a pull request", file=sys.stderr)
    return EXIT_OK


def _request(args: argparse.Namespace) -> Path:
    root: Path = args.repo
    if not root.is_dir():
        raise RequestError(f"{root}: not a directory")
    if args.message is not None and not args.branch:
        raise RequestError("--message is for the commit that --branch makes")
    request = build_request(args.action, args.target, args.reason, args.hosts)
    text = request_yaml(request)
    git_root: Path | None = None
    if args.branch:
        git_root = _git_preflight(root, args.branch)
    rel = _new_name(root, request)
    check_against_repo(root, rel, text, request)
    if git_root is None:
        return _write(root / rel, text)
    message = args.message or default_message(request)
    return _commit_on_branch(git_root, root / rel, text, args.branch, message)


def build_request(action: str, target: str, reason: str, hosts: str | None) -> Request:
    """The request the arguments describe, validated as a request file would be."""
    map_name, slash, component = target.partition("/")
    if not slash or not map_name or not component or "/" in component:
        raise RequestError(f"target {target!r}: expected MAP/COMPONENT (COMPONENT may be '*')")
    data: dict[str, object] = {
        "map": map_name,
        "component": component,
        "action": action,
        "reason": reason,
    }
    if hosts is not None:
        names = [name.strip() for name in hosts.split(",")]
        if not all(names):
            raise RequestError(f"--hosts {hosts!r}: expected names separated by commas")
        data["hosts"] = names
    try:
        return Request.model_validate(data)
    except ValidationError as exc:
        raise RequestError(explain_input(exc, whole_map_field="component")) from None


def request_yaml(request: Request) -> str:
    """The request file's text: plain YAML, every string safely quoted where needed."""
    data = request.model_dump(mode="json", exclude_none=True)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    if Request.model_validate(yaml.safe_load(text)) != request:
        raise RequestError("internal error: the request does not read back as written")
    return text


def default_message(request: Request) -> str:
    first_line = request.reason.strip().splitlines()[0]
    if len(first_line) > 60:
        first_line = first_line[:59] + "…"
    return f"Request {request.action} of {request.map}/{request.component}: {first_line}"


def _new_name(root: Path, request: Request) -> str:
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    component = "all" if request.component == ALL_COMPONENTS else request.component
    for _ in range(8):
        rel = f"{REQUESTS_DIR}/{date}-{request.action}-{component}-{secrets.token_hex(3)}.yaml"
        if not (root / rel).exists():
            return rel
    raise RequestError(f"{root / REQUESTS_DIR}: cannot find a free file name")


def check_against_repo(root: Path, rel: str, text: str, request: Request) -> None:
    """Load the repo with the new file in it; any error about that file is the user's."""
    data = text.encode()
    new = RepoFile(rel, "request", lambda: data, len(data), rel)
    repo = load_repo([*read_tree(root), new])
    if request.map in repo.unloaded_maps:
        raise RequestError(
            f"map '{request.map}' has errors: fix them first (opsmap validate {root})"
        )
    loaded = [r.model for r in repo.requests if r.doc.path == rel]
    if loaded != [request]:
        raise RequestError("internal error: the request file does not load back as written")
    findings = check_repo(repo)
    mine = [f for f in findings if f.location.file == rel and f.severity is Severity.ERROR]
    if mine:
        raise RequestError("; ".join(f.message for f in mine))
    others = [f for f in findings if f.severity is Severity.ERROR and f.location.file != rel]
    if others:
        sys.stderr.write(format_text(others))
        print(
            f"opsmap: warning: {root} has {len(others)} other error(s): the pull request's "
            "validation will fail until they are fixed",
            file=sys.stderr,
        )


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        raise RequestError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return path


# -- git ------------------------------------------------------------------------------------


def _git(cwd: Path, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    """Run ``git ARGS`` in ``cwd`` with the user's own configuration and identity."""
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RequestError(f"git {args[0]}: {exc}") from None
    if done.returncode not in ok:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise RequestError(f"git {args[0]} failed: {detail[-1] if detail else done.returncode}")
    return done


def _git_preflight(root: Path, branch: str) -> Path:
    """The top of the work tree at ``root``, once the branch, HEAD and identity are fine."""
    inside = _git(root, "rev-parse", "--is-inside-work-tree", ok=(0, 128))
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        raise RequestError(f"{root}: not in a git working tree (--branch needs one)")
    top = Path(_git(root, "rev-parse", "--show-toplevel").stdout.strip())
    if _git(top, "check-ref-format", "--branch", branch, ok=(0, 1, 128)).returncode != 0:
        raise RequestError(f"--branch {branch!r}: not a valid branch name")
    if branch.startswith("-"):
        raise RequestError(f"--branch {branch!r}: not a valid branch name")
    if _git(top, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", ok=(0, 1)).returncode:
        raise RequestError(f"{top}: HEAD has no commit yet to branch from")
    exists = _git(top, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", ok=(0, 1))
    if exists.returncode == 0:
        raise RequestError(f"branch {branch!r} already exists")
    ident = _git(top, "var", "GIT_COMMITTER_IDENT", ok=(0, 128))
    if ident.returncode != 0:
        raise RequestError(
            "git has no identity to commit with: set user.name and user.email "
            "(git config --global user.email you@example.com)"
        )
    return top


def _commit_on_branch(top: Path, path: Path, text: str, branch: str, message: str) -> Path:
    """Switch to a new ``branch`` from HEAD and commit only ``path`` there."""
    rel = path.resolve().relative_to(top.resolve()).as_posix()
    current = _git(top, "symbolic-ref", "--quiet", "--short", "HEAD", ok=(0, 1))
    previous = current.stdout.strip() if current.returncode == 0 else None
    head = _git(top, "rev-parse", "--verify", "HEAD^{commit}").stdout.strip()
    _git(top, "switch", "--quiet", "--create", branch)
    try:
        _write(path, text)
        _git(top, "add", "--", rel)
        _git(top, "commit", "--quiet", "--message", message, "--", rel)
    except RequestError:
        _undo(top, path, rel, branch, previous or head, detach=previous is None)
        raise
    return path


def _undo(top: Path, path: Path, rel: str, branch: str, back_to: str, *, detach: bool) -> None:
    """Take back a failed commit: unstage and remove the file, go back, drop the branch."""
    _git(top, "reset", "--quiet", "--", rel, ok=(0, 1, 128))
    path.unlink(missing_ok=True)
    where = ["--detach", back_to] if detach else [back_to]
    _git(top, "switch", "--quiet", *where, ok=(0, 1, 128))
    _git(top, "branch", "--quiet", "-D", branch, ok=(0, 1, 128))
