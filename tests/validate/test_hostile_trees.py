"""Property tests: generated hostile map repos, as a pull request's author could push them.

Each example is a tree of entries in OpsMap's folders: files with names made of control
characters, newlines, backticks, Markdown and Unicode; random YAML values or bytes that
are not UTF-8; modes; symlinks to a sentinel outside the repo (a file holding a secret,
and its folder) or inside; FIFOs. It goes to ``opsmap validate`` (the real CLI), to the
reconciler's revision loader (``GitSource.files_at`` + ``load_repo`` + ``check_repo``, as
``Reconciler._load`` does) and to ``opsmap plan``. Whatever the tree: no traceback, the
secret appears in no output, the sentinel is not read (its atime stays put on this
relatime file system) nor changed, no raw control character is printed, and the output
stays small. Few examples per run (the machine is shared): hypothesis varies them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.repo.loader import load_repo
from reconciler.rules import check_repo

PROJECT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-SENTINEL-9f8e7d6c5b4a"
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
MAX_OUTPUT = 400_000
"""Far above what a few dozen findings print: a bound, not a measure."""
FOLDERS = ["maps", "policies", "inventory", "requests", "maps/sub", "policies/a/b", "."]
SETTINGS = dict(max_examples=30, deadline=None, database=None)
SETTINGS |= dict(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Each example starts a real `opsmap validate` or `opsmap plan`: up to thirty processes
# took 14 to 24 s a test on a loaded two-core machine, too close to the unit default of
# 60 s; the mark leaves them seven times that.
pytestmark = pytest.mark.timeout(180)

names = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("\n\r\t\x1b\x07\x7f\x9b`*_[]()<>#!|~@&$:\\ -.\u202e\u2028")),
        st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"),
    ),
    min_size=1,
    max_size=24,
).filter(lambda n: n not in (".", "..") and len(n.encode()) < 200)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    names,
    st.sampled_from(["shop", "nginx", "restart", "admin", "group: sre", "${HOME}", "../../x"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(names, st.sampled_from(["name", "components", "id", "checks"])),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=20,
)
contents = st.one_of(
    values.map(lambda v: yaml.safe_dump(v, allow_unicode=True).encode()),
    st.binary(max_size=300),
    st.just(b'name: shop\ncomponents:\n  - id: a\n    name: "\\e[31m"\n'),
)


@dataclass(frozen=True)
class Entry:
    folder: str
    name: str
    kind: str
    """file, link-out, link-folder-out, link-in, fifo"""
    content: bytes
    mode: int


entries = st.builds(
    Entry,
    folder=st.sampled_from(FOLDERS),
    name=st.one_of(names.map(lambda n: n + ".yaml"), names),
    kind=st.sampled_from(
        ["file", "file", "file", "link-out", "link-folder-out", "link-in", "fifo"]
    ),
    content=contents,
    mode=st.sampled_from([0o644, 0o600, 0o755, 0o000]),
)
trees = st.lists(entries, min_size=1, max_size=8)


@dataclass
class World:
    repo: Path
    secret: Path

    def assert_sentinel_untouched(self, before: os.stat_result) -> None:
        after = os.stat(self.secret)
        assert after.st_mtime_ns == before.st_mtime_ns, "the sentinel was written"
        assert after.st_atime_ns == before.st_atime_ns, "the sentinel outside the repo was read"


@contextmanager
def world(tree: list[Entry], *, git_friendly: bool = False) -> Iterator[World]:
    """The tree under ``repo/``, beside ``outside/`` whose ``secret.yaml`` holds the secret."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        outside = root / "outside"
        outside.mkdir()
        secret = outside / "secret.yaml"
        secret.write_text(f"{SECRET}\n")
        past = 1_600_000_000_000_000_000
        os.utime(secret, ns=(past, past))  # atime == mtime: a read moves atime (relatime)
        repo = root / "repo"
        repo.mkdir()
        for entry in tree:
            folder = repo / entry.folder
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / entry.name
            if os.path.lexists(path):
                continue
            if entry.kind == "file":
                path.write_bytes(entry.content)
                path.chmod(entry.mode)
            elif entry.kind == "link-out":
                path.symlink_to(secret)
            elif entry.kind == "link-folder-out":
                path.symlink_to(outside, target_is_directory=True)
            elif entry.kind == "link-in":
                path.symlink_to("../" * entry.folder.count("/") + "opsmap.yaml")
            elif not git_friendly:
                os.mkfifo(path)
        yield World(repo, secret)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=120,
        check=False,
    )


def assert_clean_output(done: subprocess.CompletedProcess[str]) -> None:
    for stream in (done.stdout, done.stderr):
        assert "Traceback" not in stream, stream[-2000:]
        assert SECRET not in stream
        assert not RAW_CONTROL.search(stream), RAW_CONTROL.search(stream)
        assert len(stream) < MAX_OUTPUT


def test_the_sentinel_notices_a_read() -> None:
    """The atime check can fail: on this file system, reading the sentinel moves its atime."""
    with world([]) as w:
        before = os.stat(w.secret)
        w.secret.read_bytes()
        if os.stat(w.secret).st_atime_ns == before.st_atime_ns:
            pytest.skip("this file system does not record reads (noatime)")
        with pytest.raises(AssertionError, match="was read"):
            w.assert_sentinel_untouched(before)


@settings(**SETTINGS)
@given(tree=trees, fmt=st.sampled_from(["text", "github", "json"]))
def test_validate_survives_any_tree(tree: list[Entry], fmt: str) -> None:
    with world(tree) as w:
        before = os.stat(w.secret)
        done = cli("validate", ".", "--format", fmt, cwd=w.repo)
        assert done.returncode in (0, 1), done.stderr[-2000:]
        assert_clean_output(done)
        w.assert_sentinel_untouched(before)


def _git(repo: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="Mallory",
        GIT_AUTHOR_EMAIL="mallory@example.com",
        GIT_COMMITTER_NAME="Mallory",
        GIT_COMMITTER_EMAIL="mallory@example.com",
    )
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, check=True, timeout=60
    )
    return done.stdout.decode().strip()


def _commit_two(w: World) -> str:
    """Base: an empty commit; head: the hostile tree, links as links. Head's SHA."""
    for path in w.repo.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(0o644)  # git reads as its user; the mode bits it keeps are x or not
    _git(w.repo, "init", "-q", "-b", "main")
    _git(w.repo, "commit", "-q", "--allow-empty", "-m", "base")
    _git(w.repo, "add", "-A")
    _git(w.repo, "commit", "-q", "--allow-empty", "-m", "head")
    return _git(w.repo, "rev-parse", "HEAD")


def _messages(findings: list[Any]) -> str:
    return "\n".join(f"{f.location} {f.message}" for f in findings)


@settings(**{**SETTINGS, "max_examples": 20})
@given(tree=trees)
def test_the_revision_loader_survives_any_commit(tree: list[Entry]) -> None:
    from reconciler.git.mirror import GitSource

    with world(tree, git_friendly=True) as w:
        sha = _commit_two(w)
        before = os.stat(w.secret)
        cache = w.repo.parent / "cache"
        source = GitSource(str(w.repo), cache_dir=cache, timeout_s=60)
        source.fetch()
        repo = load_repo(source.files_at(sha))
        findings = check_repo(repo)
        assert SECRET not in _messages([*repo.findings, *findings])
        assert len(_messages(findings)) < MAX_OUTPUT
        w.assert_sentinel_untouched(before)
        shutil.rmtree(cache)


@settings(**{**SETTINGS, "max_examples": 20})
@given(tree=trees, fmt=st.sampled_from(["markdown", "json"]))
def test_plan_survives_any_pull_request(tree: list[Entry], fmt: str) -> None:
    with world(tree, git_friendly=True) as w:
        _commit_two(w)
        before = os.stat(w.secret)
        done = cli("plan", "--base", "HEAD^", "--format", fmt, cwd=w.repo)
        assert done.returncode in (0, 1), done.stderr[-2000:]
        assert_clean_output(done)
        if fmt == "markdown":
            assert done.stdout.startswith("<!-- opsmap-plan -->")
            assert len(done.stdout) <= 65_000
        w.assert_sentinel_untouched(before)
