"""``--max-output``: a size in bytes, K or M, within the bounds; anything else is a usage
error (one line, the value shown inert), never a traceback."""

from __future__ import annotations

import pytest

from reconciler.cli.run import max_output_argument


@pytest.mark.parametrize(
    ("value", "size"),
    [("64K", 65536), ("4096", 4096), ("1m", 1 << 20), (" 256k ", 262144), ("64M", 64 << 20)],
)
def test_a_size_is_bytes_k_or_m(value: str, size: int) -> None:
    assert max_output_argument(value) == size


@pytest.mark.parametrize(
    "value", ["", "4095", "65M", "1G", "-1K", "1.5M", "K", "²K", "64K\x1b[2J", "9" * 40]
)
def test_anything_else_is_one_usage_line(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert max_output_argument(value) is None
    err = capsys.readouterr().err
    assert err.startswith("opsmap: error: --max-output ")
    assert err.count("\n") == 1
    assert "\x1b" not in err
