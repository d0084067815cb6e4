"""OpsMap's version: the installed distribution's (``pyproject.toml``'s ``version``)."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as distribution_version

UNKNOWN = "0+unknown"
"""The version of code run from a tree that was never installed (no metadata)."""


@cache
def version() -> str:
    """The ``opsmap`` distribution's version, or :data:`UNKNOWN` when it is not installed."""
    try:
        return distribution_version("opsmap")
    except PackageNotFoundError:
        return UNKNOWN


__all__ = ["UNKNOWN", "version"]
