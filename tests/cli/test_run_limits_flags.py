"""``opsmap run``'s listener flags: a bad value is one line and exit 2, before anything starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--metrics-listen", "nowhere"], "--metrics-listen 'nowhere': expected HOST:PORT"),
        (["--metrics-listen", "127.0.0.1:²"], "--metrics-listen '127.0.0.1:²': expected HOST:PORT"),
        (["--listen", "127.0.0.1:99999"], "--listen '127.0.0.1:99999': expected HOST:PORT"),
        (["--max-connections", "0"], "--max-connections must be between 1 and 100000"),
        (["--max-streams-per-client", "0"], "--max-streams-per-client must be between 1 and"),
        (["--max-requests-per-client", "-3"], "--max-requests-per-client must be between 1 and"),
        (["--send-timeout", "0"], "--send-timeout must be between 0.1 and 3600 seconds"),
        (["--send-timeout", "nan"], "--send-timeout must be between 0.1 and 3600 seconds"),
    ],
)
def test_a_bad_listener_flag_is_a_usage_error(
    flags: list[str], message: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "run", "--repo", str(tmp_path), *flags],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / ".opsmap-state").exists()  # nothing started
