"""Helpers for the agentless tests (in tests/support, on pytest's pythonpath)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from sshd import Fleet

from agentless.backoff import Backoff
from agentless.ssh import SshSettings, SshTransport


def transport_for(
    fleet: Fleet,
    *,
    backoff_base_s: float = 30.0,
    default_known_hosts: Path | None = None,
    **kwargs: object,
) -> SshTransport:
    """An SshTransport that trusts only the fleet's known_hosts and uses its client key."""
    settings = SshSettings(
        base_dir=fleet.workdir,
        client_keys=[str(fleet.client_key)],
        use_agent=False,
        default_known_hosts=default_known_hosts,
    )
    backoff = Backoff(base_s=backoff_base_s, max_s=max(backoff_base_s, 60.0))
    return SshTransport(settings, backoff=backoff, **kwargs)  # type: ignore[arg-type]


def live_pids(name: str) -> list[int]:
    """Pids of live (not zombie) processes whose comm is ``name``, read from /proc."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        state = text[text.rindex(")") + 2]
        if comm == name and state not in "ZX":
            pids.append(int(stat.parent.name))
    return pids


async def wait_until(condition: Callable[[], bool], *, within: float = 10.0) -> bool:
    """Poll ``condition`` until it holds (True) or ``within`` seconds passed (False)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def wait_until_async(
    condition: Callable[[], Awaitable[bool]], *, within: float = 10.0
) -> bool:
    """Like :func:`wait_until` for a condition that must itself be awaited."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True
