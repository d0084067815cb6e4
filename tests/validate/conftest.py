"""Fixtures of the ``opsmap validate`` tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from validate_support import Repo


@pytest.fixture
def repo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Repo:
    """An empty map repo in a temp folder; the CLI runs from its root."""
    root = tmp_path / "repo"
    root.mkdir()
    return Repo(root, capsys, monkeypatch)
