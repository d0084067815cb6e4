"""packaging/systemd/opsmap.service passes ``systemd-analyze verify`` without a word.

``verify`` checks the unit as systemd would load it, including that ExecStart's program
exists: the unit goes into a temporary root (``--root``) with the distribution's own
units beside it and the real ``opsmap`` entry point at /opt/opsmap/bin/opsmap, so the
shipped file is checked unchanged. ``verify`` exits 0 on an unknown or misspelt setting
and only prints it, so any output at all fails the test; a copy with a misspelt key is
the control. ``security --offline`` scores the sandbox (0 is best, 10 worst).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "packaging" / "systemd" / "opsmap.service"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")
MAX_EXPOSURE = 1.5


def analyze() -> str:
    found = shutil.which("systemd-analyze")
    assert found, "systemd-analyze is not installed (Debian's systemd package)"
    return found


def unit_root(tmp_path: Path, text: str) -> Path:
    """A root holding the unit, the system's units, and an executable opsmap entry point."""
    root = tmp_path / "root"
    (root / "etc" / "systemd" / "system").mkdir(parents=True)
    (root / "etc" / "systemd" / "system" / "opsmap.service").write_text(text)
    shutil.copytree(SYSTEM_UNITS, root / "usr" / "lib" / "systemd" / "system", symlinks=True)
    program = root / "opt" / "opsmap" / "bin" / "opsmap"
    program.parent.mkdir(parents=True)
    program.write_text(f"#!{sys.executable}\nfrom reconciler.cli import main\nmain()\n")
    program.chmod(0o755)
    return root


def verify(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [analyze(), "verify", f"--root={root}", "opsmap.service"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_unit_verifies_without_any_message(tmp_path: Path) -> None:
    done = verify(unit_root(tmp_path, UNIT.read_text()))
    assert done.returncode == 0, done.stderr
    assert done.stdout + done.stderr == "", done.stdout + done.stderr


def test_a_misspelt_setting_is_caught(tmp_path: Path) -> None:
    text = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystm=strict")
    assert text != UNIT.read_text()
    done = verify(unit_root(tmp_path, text))
    assert "Unknown key" in done.stderr, done.stderr


def test_a_missing_program_is_caught(tmp_path: Path) -> None:
    root = unit_root(tmp_path, UNIT.read_text())
    (root / "opt" / "opsmap" / "bin" / "opsmap").unlink()
    done = verify(root)
    assert done.returncode != 0
    assert "/opt/opsmap/bin/opsmap" in done.stderr, done.stderr


@pytest.mark.parametrize(
    "setting",
    ["DynamicUser=yes", "StateDirectory=opsmap", "Restart=on-failure", "NoNewPrivileges=yes"],
)
def test_the_unit_says(setting: str) -> None:
    assert re.search(rf"^{re.escape(setting)}$", UNIT.read_text(), re.MULTILINE), setting


def test_credentials_feed_the_webhook_secret_and_the_key_dir() -> None:
    text = UNIT.read_text()
    assert re.search(r"^LoadCredential=webhook-secret:/", text, re.MULTILINE)
    assert "--webhook-secret-file %d/webhook-secret" in text
    assert "--ssh-key-dir %d" in text
    assert "--state-dir %S/opsmap" in text


def test_the_sandbox_scores_at_most_1_5(tmp_path: Path) -> None:
    done = subprocess.run(
        [analyze(), "security", "--offline=yes", f"--root={unit_root(tmp_path, UNIT.read_text())}",
         "--no-pager", "opsmap.service"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    found = re.search(r"Overall exposure level for opsmap\.service: (\d+\.\d)", done.stdout)
    assert found, done.stdout + done.stderr
    print(f"systemd-analyze security: {found.group(1)}")
    assert float(found.group(1)) <= MAX_EXPOSURE, done.stdout
