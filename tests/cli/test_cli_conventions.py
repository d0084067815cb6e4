"""The ``opsmap`` command's conventions, through the real CLI (``python -m reconciler``):
``--version``, ``schema``, ``completion``, did-you-mean on a mistyped option or subcommand,
``-q`` / ``-v``, and ``opsmap check``'s progress, summary and table width on a terminal
(a real pseudo-terminal, from the :mod:`pty` module) or not."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from importlib.metadata import version
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
LONG = "all good " + "x" * 150 + " THE END"


def cli(*args: str, cwd: Path = PROJECT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if k != "COLUMNS"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def on_terminals(*args: str, cwd: Path, columns: int) -> tuple[int, str, str]:
    """Run the CLI with stdout and stderr on two pseudo-terminals ``columns`` wide."""
    masters, slaves = [], []
    for _ in range(2):
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        masters.append(master)
        slaves.append(slave)
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if k != "COLUMNS"},
        stdin=subprocess.DEVNULL,
        stdout=slaves[0],
        stderr=slaves[1],
    )
    for slave in slaves:
        os.close(slave)
    out = {m: b"" for m in masters}
    open_fds = set(masters)
    while open_fds:
        ready, _, _ = select.select(list(open_fds), [], [], 60)
        assert ready, "the CLI wrote nothing for 60 s"
        for fd in ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the other end is closed
                chunk = b""
            if chunk:
                out[fd] += chunk
            else:
                open_fds.discard(fd)
    code = proc.wait(timeout=60)
    for master in masters:
        os.close(master)
    stdout, stderr = (out[m].decode().replace("\r\n", "\n") for m in masters)
    return code, stdout, stderr


@pytest.fixture
def checks_repo(tmp_path: Path) -> Path:
    """Six checks on this machine (``transport: local``), each saying a long message."""
    repo = tmp_path / "repo"
    (repo / "maps").mkdir(parents=True)
    (repo / "inventory").mkdir()
    (repo / "inventory" / "local.yaml").write_text(
        "hosts:\n  - name: here\n    transport: local\n    labels: {role: x}\n"
    )
    checks = [
        {"name": f"c{i}", "type": "command", "config": {"command": f"echo '{LONG}'"}}
        for i in range(6)
    ]
    component = {"id": "a", "hosts": {"labels": {"role": "x"}}, "checks": checks}
    (repo / "maps" / "m.yaml").write_text(json.dumps({"name": "m", "components": [component]}))
    return repo


# -- version, schema, completion ---------------------------------------------------------


def test_version_is_the_installed_distributions() -> None:
    done = cli("--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"opsmap {version('opsmap')}\n", "")


def test_the_readme_quotes_the_version_the_package_has() -> None:
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    assert f"prints the installed version (`opsmap {version('opsmap')}`)" in readme


@pytest.mark.parametrize("name", ["map", "policy", "inventory", "request", "settings"])
def test_schema_prints_what_schemas_holds(name: str) -> None:
    done = cli("schema", name)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (PROJECT / "schemas" / f"{name}.schema.json").read_text()


def test_bash_completion_completes_subcommands_and_options(tmp_path: Path) -> None:
    script = tmp_path / "opsmap.bash"
    done = cli("completion", "bash")
    assert done.returncode == 0, done.stderr
    script.write_text(done.stdout)
    probe = (
        f"source {script}\n"
        'complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=();'
        ' _shtab_opsmap; echo "${COMPREPLY[*]}"; }\n'
        "complete_words opsmap ch\n"
        "complete_words opsmap check --for\n"
        "complete_words opsmap run --log-format ''\n"
    )
    shown = subprocess.run(
        ["bash", "-c", probe], capture_output=True, text=True, timeout=60, check=True
    ).stdout.splitlines()
    assert shown == ["check", "--format", "text json"]


def test_zsh_completion_is_generated() -> None:
    done = cli("completion", "zsh")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("#compdef opsmap")
    assert "--log-format" in done.stdout


# -- mistakes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "usage", "error"),
    [
        (
            ["check", "--fromat", "json"],
            "usage: opsmap check ",
            "opsmap check: error: unrecognized arguments: --fromat; did you mean '--format'?",
        ),
        (
            ["plan", "--bse", "main"],
            "usage: opsmap plan ",
            "opsmap plan: error: unrecognized arguments: --bse; did you mean '--base'?",
        ),
        (
            ["check", "--format", "tabel"],
            "usage: opsmap check ",
            "opsmap check: error: argument --format: invalid choice: 'tabel' (choose from "
            "'table', 'json'); did you mean 'table'?",
        ),
        (
            ["chek"],
            "usage: opsmap ",
            "did you mean 'check'?",
        ),
        (["--verison"], "usage: opsmap ", "did you mean '--version'?"),
        (
            ["validate", "--zzzz"],
            "usage: opsmap validate ",
            "opsmap validate: error: unrecognized arguments: --zzzz",
        ),
    ],
)
def test_a_mistake_gets_the_subcommands_usage_and_a_did_you_mean(
    args: list[str], usage: str, error: str
) -> None:
    done = cli(*args)

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(usage), done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.endswith(error) if error.startswith("did") else last == error
    assert "Traceback" not in done.stderr


def test_nothing_close_suggests_nothing() -> None:
    assert "did you mean" not in cli("validate", "--zzzz").stderr


# -- opsmap check: progress, summary, width ----------------------------------------------


def test_on_terminals_check_shows_progress_and_fits_the_table_to_the_width(
    checks_repo: Path,
) -> None:
    code, stdout, stderr = on_terminals("check", cwd=checks_repo, columns=72)

    assert code == 0, stdout + stderr
    assert "checking: 6/6 done" in stderr
    assert "\r\x1b[2K" in stderr  # the progress line is erased before the table
    assert stderr.rstrip("\n").rsplit("\r\x1b[2K", 1)[-1].startswith("6 checks on 1 host: 6 OK in")
    rows = stdout.splitlines()
    assert rows[0].split() == ["MAP", "COMPONENT", "HOST", "CHECK", "STATE", "DURATION", "MESSAGE"]
    assert len(rows) == 7
    assert all(len(row) <= 72 for row in rows), rows
    assert all(row.endswith("…") for row in rows[1:]), rows


def test_into_a_pipe_check_keeps_every_message_whole_and_shows_no_progress(
    checks_repo: Path,
) -> None:
    done = cli("check", cwd=checks_repo)

    assert done.returncode == 0, done.stderr
    assert all(row.endswith(LONG) for row in done.stdout.splitlines()[1:])
    assert "checking:" not in done.stderr
    assert done.stderr.startswith("6 checks on 1 host: 6 OK in ")
    assert len(done.stderr.splitlines()) == 1


def test_quiet_check_prints_the_table_alone(checks_repo: Path) -> None:
    code, stdout, stderr = on_terminals("check", "-q", cwd=checks_repo, columns=100)

    assert code == 0
    assert stderr == ""
    assert len(stdout.splitlines()) == 7


def test_verbose_check_shows_what_the_engine_logs(checks_repo: Path) -> None:
    slow = {"name": "slow", "type": "command", "config": {"command": "sleep 30"}, "timeout_secs": 1}
    component = {"id": "a", "hosts": {"labels": {"role": "x"}}, "checks": [slow]}
    (checks_repo / "maps" / "m.yaml").write_text(
        json.dumps({"name": "m", "components": [component]})
    )

    plain = cli("check", cwd=checks_repo)
    loud = cli("check", "-v", cwd=checks_repo)

    assert plain.returncode == loud.returncode == 1
    assert "timed out" in plain.stdout  # the table says it
    assert "INFO" not in plain.stderr
    assert "opsmap: INFO: command timed out after 1s on here" in loud.stderr


def test_quiet_validate_prints_the_findings_alone(checks_repo: Path) -> None:
    assert (
        cli("validate", ".", cwd=checks_repo).stderr == "opsmap: valid: 0 error(s), 0 warning(s)\n"
    )
    assert cli("validate", "-q", ".", cwd=checks_repo).stderr == ""
