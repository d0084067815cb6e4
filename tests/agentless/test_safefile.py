"""``read_confined``: the one open of a file that untrusted text names.

Real files, FIFOs, devices and symlinks; a FIFO or a device must be refused without
blocking or reading (pytest-timeout guards the hang a blocking open would be).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from agentless.safefile import UnsafeFile, read_confined, read_confined_async

pytestmark = pytest.mark.timeout(30)

SECRET = "SENTINEL-CONTENT-never-shown"


@pytest.fixture
def base(tmp_path: Path) -> Path:
    root = tmp_path / "base"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "file").write_text("hello\n")
    (tmp_path / "outside").write_text(SECRET)
    return root


def refused(base: Path, name: str, *, max_bytes: int = 1024) -> str:
    with pytest.raises(UnsafeFile) as caught:
        read_confined(base, name, max_bytes=max_bytes)
    message = str(caught.value)
    assert SECRET not in message
    return caught.value.reason


def test_a_regular_file_inside_is_read(base: Path) -> None:
    assert read_confined(base, "sub/file", max_bytes=1024) == b"hello\n"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../outside", "contains '..'"),
        ("sub/../../outside", "contains '..'"),
        ("/etc/passwd", "absolute path"),
        ("~/x", "starts with '~'"),
        ("", "is empty"),
        ("a\0b", "NUL"),
    ],
)
def test_a_name_that_leaves_the_folder_is_refused_unopened(
    base: Path, name: str, reason: str
) -> None:
    assert reason in refused(base, name)


def test_a_symlink_is_never_followed(base: Path, tmp_path: Path) -> None:
    os.symlink(tmp_path / "outside", base / "link")
    os.symlink(tmp_path, base / "up")
    assert "symlink" in refused(base, "link")
    assert "symlink" in refused(base, "up/outside")


def test_a_fifo_is_refused_without_blocking(base: Path) -> None:
    os.mkfifo(base / "fifo")
    assert "FIFO" in refused(base, "fifo")


def test_a_device_is_refused_without_reading(tmp_path: Path) -> None:
    assert "device" in refused(Path("/dev"), "zero", max_bytes=1 << 30)


def test_a_folder_and_an_oversize_file_are_refused(base: Path) -> None:
    assert "folder" in refused(base, "sub")
    (base / "big").write_bytes(b"x" * 1025)
    assert "over the 1024-byte limit" in refused(base, "big")


def test_the_async_read_runs_off_the_loop(base: Path) -> None:
    async def main() -> bytes:
        return await read_confined_async(base, "sub/file", max_bytes=64, timeout_s=10)

    assert asyncio.run(main()) == b"hello\n"
