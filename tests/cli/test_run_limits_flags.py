"""``opsmap run``'s listener flags: a bad value is one line and exit 2, before anything starts."""

from __future__ import annotations

import socket
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


@pytest.mark.parametrize(
    ("listen", "metrics"), [("127.0.0.1", "localhost"), ("0.0.0.0", "127.0.0.1")]
)
def test_metrics_listen_on_the_main_listeners_port_is_refused(
    listen: str, metrics: str, tmp_path: Path
) -> None:
    """Both sockets bind (``SO_REUSEADDR``); only the second to listen would fail, later."""
    subprocess.run(["git", "init", "-q", str(tmp_path / "repo")], check=True, timeout=60)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = subprocess.run(
        [
            sys.executable, "-m", "reconciler", "run", "--repo", str(tmp_path / "repo"),
            "--state-dir", str(tmp_path / "state"),
            "--listen", f"{listen}:{port}", "--metrics-listen", f"{metrics}:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert f"cannot listen on {metrics}:{port} for /metrics: it is --listen's" in done.stderr
    assert "Traceback" not in done.stderr
