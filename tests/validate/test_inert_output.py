"""Repo text and host output reach the terminal inert: no control character, one line each.

File names carry newlines, fence lines, ESC colour codes and OSC 8 hyperlinks; a command
check prints the same. ``validate`` (text and GitHub formats) and ``check`` run as the real
CLI; the tests look at the bytes they print.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.inert import code_fence, code_span, for_log, for_markdown, for_terminal

PROJECT = Path(__file__).resolve().parents[2]
ESC_RED = "\x1b[31m"
OSC8 = "\x1b]8;;http://e.example/x\x07link\x1b]8;;\x07"
HOSTILE_NAMES = [
    "new\nline",
    "fence\n```\nout",
    f"red{ESC_RED}x",
    f"osc{OSC8}",
    "![x](http://e.example/x.png)",
    "@org-team mention",
    "bidi\u202eevil\u2066",
    "c1\x9b31m",
    "cr\rover",
]
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""What must never be printed raw (newline and tab are layout)."""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def hostile_repo(tmp_path: Path) -> Path:
    """A repo whose every map file has a hostile name and an unknown, hostile key."""
    repo = tmp_path / "repo"
    (repo / "maps").mkdir(parents=True)
    for index, name in enumerate(HOSTILE_NAMES):
        key = json.dumps(f"key{name}")
        file_name = name.replace("/", "_")  # a file name holds no slash
        (repo / "maps" / f"{file_name}.yaml").write_text(f"name: m{index}\n{key}: 1\n")
    return repo


def test_validate_text_prints_one_inert_line_per_finding(hostile_repo: Path) -> None:
    done = cli("validate", ".", cwd=hostile_repo)
    assert done.returncode == 1
    assert not RAW_CONTROL.search(done.stdout + done.stderr)
    lines = done.stdout.splitlines()
    assert len(lines) == len(HOSTILE_NAMES)  # one unknown key each
    assert all(line.startswith("maps/") for line in lines)
    assert "maps/red\\x1b[31mx.yaml:2:1: error: unknown key 'keyred\\x1b[31mx'" in done.stdout
    assert "maps/new\\x0aline.yaml" in done.stdout  # a newline in a name forges no line


def test_validate_github_annotations_are_one_line_and_inert(hostile_repo: Path) -> None:
    done = cli("validate", ".", "--format", "github", cwd=hostile_repo)
    assert done.returncode == 1
    assert not RAW_CONTROL.search(done.stdout)
    lines = done.stdout.splitlines()
    assert lines
    assert all(line.startswith("::error file=maps/") for line in lines)
    fence = next(line for line in lines if "fence" in line)
    assert "%0A" not in fence.split("::")[1]  # the file property: no newline, even escaped
    assert "fence\\x0a```\\x0aout" in fence


def test_check_output_from_the_host_is_inert(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "maps").mkdir(parents=True)
    (repo / "inventory").mkdir()
    (repo / "inventory" / "local.yaml").write_text(
        "hosts:\n  - name: here\n    transport: local\n    labels: {role: x}\n"
    )
    command = r"printf '\033[31mred \033]8;;http://e.example\007link\033]8;;\007 \302\233x\n'"
    check = {"name": "loud", "type": "command", "config": {"command": command}}
    component = {"id": "a", "hosts": {"labels": {"role": "x"}}, "checks": [check]}
    (repo / "maps" / "m.yaml").write_text(json.dumps({"name": "m", "components": [component]}))
    done = cli("check", "--repo", ".", cwd=repo)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not RAW_CONTROL.search(done.stdout + done.stderr)
    assert "\\x1b[31mred \\x1b]8;;http://e.example\\x07link" in done.stdout


# -- the functions themselves ----------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_terminal_and_log_keep_nothing_a_terminal_interprets(name: str) -> None:
    assert not RAW_CONTROL.search(for_terminal(name))
    assert "\n" not in for_log(name)
    assert not RAW_CONTROL.search(for_log(name))


def test_code_spans_and_fences_outrun_every_backtick_run() -> None:
    assert code_span("a ``` b") == "````a ``` b````"
    assert code_span("`x`") == "`` `x` ``"
    fence = code_fence("one\n````\ntwo")
    assert fence.startswith("`````\n")
    assert fence.endswith("\n`````")


def test_markdown_text_is_entities_where_syntax_could_start() -> None:
    text = for_markdown("![x](http://e.example/x.png) @org/team #12 <b>hi</b> | *e* 1. x")
    assert "&#33;&#91;x&#93;(http:&#8203;//e.example/x.png)" in text
    assert "&#64;&#8203;org/team" in text
    assert "&#35;&#8203;12" in text
    assert "&#60;b&#62;" in text
    assert "&#124;" in text
    assert "&#42;e&#42;" in text
    assert for_markdown("1. list") == "1&#46; list"
    assert for_markdown("- item") == "&#45; item"


def test_validate_json_caps_file_names_and_messages(tmp_path: Path) -> None:
    """A request 15 folders of 250 characters deep: its name is cut in the JSON, as in text."""
    repo = tmp_path / "repo"
    deep = repo / "requests" / "/".join(f"{index:02d}" + "d" * 248 for index in range(15))
    deep.mkdir(parents=True)
    (deep / "r.yaml").write_text("map: nope\ncomponent: x\naction: restart\nreason: r\nzz: 1\n")
    done = cli("validate", ".", "--format", "json", cwd=repo)
    assert done.returncode == 1
    document = json.loads(done.stdout)
    assert document["errors"]
    assert all(len(e["file"]) <= 1000 and len(e["message"]) <= 1000 for e in document["errors"])
    assert all(e["file"].endswith("…") for e in document["errors"])
