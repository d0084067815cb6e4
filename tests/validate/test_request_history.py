"""Which request files ``opsmap validate`` takes for history, in real git work trees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from gitrepos import ALICE, BareRepo, Clone

from reconciler.plan.history import HistoryError, request_history


@pytest.fixture
def clone(tmp_path: Path) -> Clone:
    return Clone.create(BareRepo.create(tmp_path / "remote.git"), tmp_path / "work")


def test_outside_git_nothing_is_history(tmp_path: Path) -> None:
    (tmp_path / "requests").mkdir()
    (tmp_path / "requests" / "r.yaml").write_text("map: m\n")

    assert request_history(tmp_path, base=None) == frozenset()
    with pytest.raises(HistoryError, match="--base needs a git work tree"):
        request_history(tmp_path, base="main")


def test_a_first_commit_adds_every_request(clone: Clone) -> None:
    clone.commit("first", author=ALICE, files={"requests/a.yaml": "x: 1\n"})

    assert request_history(clone.path, base=None) == frozenset()


def test_clean_the_requests_before_head_dirty_the_requests_of_head(clone: Clone) -> None:
    clone.commit("first", author=ALICE, files={"requests/a.yaml": "x: 1\n", "README": "r\n"})
    clone.commit("second", author=ALICE, files={"requests/sub/b.yml": "x: 2\n"})
    assert request_history(clone.path, base=None) == {"requests/a.yaml"}

    clone.write({"requests/c.yaml": "x: 3\n"})  # untracked: the next commit's
    assert request_history(clone.path, base=None) == {"requests/a.yaml", "requests/sub/b.yml"}

    clone.write({"requests/c.yaml": None, "README": "changed\n"})  # not an OpsMap file
    assert request_history(clone.path, base=None) == {"requests/a.yaml"}


def test_a_base_names_the_history(clone: Clone) -> None:
    first = clone.commit("first", author=ALICE, files={"requests/a.yaml": "x: 1\n"})
    clone.commit("second", author=ALICE, files={"requests/b.yaml": "x: 2\n"})
    clone.commit("third", author=ALICE, files={"requests/c.yaml": "x: 3\n"})

    assert request_history(clone.path, base=first) == {"requests/a.yaml"}
    assert request_history(clone.path, base="HEAD") == {
        "requests/a.yaml", "requests/b.yaml", "requests/c.yaml",
    }  # fmt: skip
    for bad in ("no-such-branch", "--upload-pack=x", ""):
        with pytest.raises(HistoryError):
            request_history(clone.path, base=bad)


def test_a_bad_base_is_one_line_and_exit_2(clone: Clone) -> None:
    clone.commit("first", author=ALICE, files={"maps/m.yaml": "name: m\ncomponents: []\n"})
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "--base", "nope", "."],
        cwd=clone.path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.endswith("--base 'nope' names no commit\n")
    assert "Traceback" not in done.stderr
