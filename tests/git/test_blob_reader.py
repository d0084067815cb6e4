"""Blobs read through one long-lived ``git cat-file``: one process, restarted, bounded."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import pytest
from gitrepos import ALICE, BareRepo, Clone

from reconciler.git.blobs import BlobReader, BlobTooLarge
from reconciler.git.errors import GitSourceError
from reconciler.git.mirror import GitSource
from reconciler.repo.yamlparse import MAX_FILE_BYTES

MAPS = {f"maps/m{i:03d}.yaml": f"name: m{i:03d}\n" for i in range(60)}


def cat_file_children() -> list[int]:
    """The ``git cat-file`` processes this test process started and that still run."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        alive = not fields.get("State", "").startswith(("Z", "X"))
        if int(fields.get("PPid", "0")) == os.getpid() and b"cat-file" in argv and alive:
            found.append(int(entry.name))
    return found


@pytest.fixture
def many(remote: BareRepo, clone: Clone, source: GitSource) -> str:
    clone.commit("many maps", author=ALICE, files=MAPS)
    head = clone.push()
    source.fetch()
    return head


def reader(source: GitSource, **kwargs: float) -> BlobReader:
    settings: dict[str, float] = {"timeout_s": 30, "max_bytes": 1000, **kwargs}
    return BlobReader(
        source.mirror,
        remote="test",
        timeout_s=settings["timeout_s"],
        max_bytes=int(settings["max_bytes"]),
    )


def test_every_file_of_a_commit_is_read_through_one_process(source: GitSource, many: str) -> None:
    before = cat_file_children()
    files = source.files_at(many)
    contents = {file.path: file.read() for file in files}
    assert {path: contents[path] for path in MAPS} == {p: t.encode() for p, t in MAPS.items()}
    assert source.read_file(many, "maps/m007.yaml") == b"name: m007\n"
    running = [pid for pid in cat_file_children() if pid not in before]
    assert len(running) == 1, running
    source.close()
    assert [pid for pid in cat_file_children() if pid not in before] == []


def test_the_pid_stays_the_same_across_reads(source: GitSource, many: str) -> None:
    blobs = reader(source)
    try:
        pids = set()
        for path, text in MAPS.items():
            assert blobs.read(f"{many}:{path}") == text.encode()
            pids.add(blobs.pid)
        assert len(pids) == 1
        assert None not in pids
    finally:
        blobs.close()
    assert blobs.pid is None


def test_a_killed_process_is_started_again(source: GitSource, many: str) -> None:
    blobs = reader(source)
    try:
        assert blobs.read(f"{many}:maps/m001.yaml") == b"name: m001\n"
        first = blobs.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        assert blobs.read(f"{many}:maps/m002.yaml") == b"name: m002\n"
        assert blobs.pid not in (None, first)
    finally:
        blobs.close()


def test_a_blob_over_the_cap_is_refused_and_the_next_read_still_works(
    source: GitSource, clone: Clone
) -> None:
    clone.commit("big", author=ALICE, files={"maps/big.yaml": "x" * 5000, "maps/s.yaml": "ok\n"})
    head = clone.push()
    source.fetch()
    blobs = reader(source, max_bytes=4999)
    try:
        with pytest.raises(BlobTooLarge) as caught:
            blobs.read(f"{head}:maps/big.yaml")
        assert (caught.value.size, caught.value.limit) == (5000, 4999)
        pid = blobs.pid
        assert blobs.read(f"{head}:maps/s.yaml") == b"ok\n"
        assert blobs.pid == pid, "a refused blob does not cost a restart"
    finally:
        blobs.close()


def test_read_file_refuses_a_file_over_the_repo_cap(source: GitSource, clone: Clone) -> None:
    clone.commit("huge", author=ALICE, files={"requests/huge.yaml": b"#" * (MAX_FILE_BYTES + 1)})
    head = clone.push()
    source.fetch()
    with pytest.raises(BlobTooLarge):
        source.read_file(head, "requests/huge.yaml")
    source.close()


def test_missing_paths_trees_and_odd_names(source: GitSource, clone: Clone) -> None:
    odd = {"maps/with space .yaml": "a\n", "maps/new\nline.yaml": "b\n", "maps/-dash.yaml": "c\n"}
    clone.commit("odd names", author=ALICE, files=odd)
    head = clone.push()
    source.fetch()
    try:
        assert source.read_file(head, "maps/nothing.yaml") is None
        assert source.read_file(head, "maps") is None, "a tree is not a file"
        assert source.read_file(head, "maps/demo.yaml") == b"name: demo\n"
        for path, text in odd.items():
            assert source.read_file(head, path) == text.encode(), path
        blobs = reader(source)
        assert blobs.read("0" * 40) is None
        with pytest.raises(ValueError, match="one-line"):
            blobs.read("a\nb")
        blobs.close()
    finally:
        source.close()


def test_a_git_that_does_not_answer_times_out(
    source: GitSource, many: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "git"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    blobs = reader(source, timeout_s=0.3)
    with pytest.raises(GitSourceError, match="timed out"):
        blobs.read(f"{many}:maps/m001.yaml")
    assert blobs.pid is None, "the silent process was killed"
