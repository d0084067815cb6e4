"""Helpers for the action tests (in tests/support, on pytest's pythonpath)."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import yaml
from sshd import Fleet

from agentless.backoff import Backoff
from agentless.inventory import Host
from agentless.result import CommandResult, HostName
from agentless.ssh import SshSettings, SshTransport
from reconciler.model.maps import Action, Map
from reconciler.model.status import ComponentStatus


def hostile_reason(marker: str) -> str:
    """A reason with every shell metacharacter a request could carry, aimed at ``marker``."""
    return (
        f'it\'s "down"; touch {marker}; $(touch {marker}) `touch {marker}`\n'
        f"second line | rm -rf / && echo 'quoted' \\ trailing  \n\t$HOME ${{IFS}}"
    )


def transport_for(fleet: Fleet) -> SshTransport:
    """An SshTransport that trusts only the fleet's known_hosts and uses its client key."""
    settings = SshSettings(
        base_dir=fleet.workdir, client_keys=[str(fleet.client_key)], use_agent=False
    )
    return SshTransport(settings, backoff=Backoff(base_s=30.0, max_s=60.0))


def load_map(text: str) -> Map:
    """A map from its YAML text, as a map file spells it (``async:``, not ``is_async``)."""
    return Map.model_validate(yaml.safe_load(textwrap.dedent(text)))


def action(**fields: object) -> Action:
    return Action.model_validate(fields)


def host(name: str) -> Host:
    return Host(name=HostName(name), address=f"{name}.example", port=22)


@dataclass
class Phases:
    """A ``set_phase`` that keeps every call and the current phase of each component."""

    calls: list[tuple[str, str, ComponentStatus | None]] = field(default_factory=list)
    current: dict[tuple[str, str], ComponentStatus | None] = field(default_factory=dict)

    def __call__(self, map_name: str, component: str, phase: ComponentStatus | None) -> None:
        self.calls.append((map_name, component, phase))
        self.current[(map_name, component)] = phase


Responder = Callable[[Host, str, float], Awaitable[CommandResult]]


class FakeTransport:
    """The one fake seam: a Transport whose answers a test scripts with ``respond``.

    Every call is kept in ``calls`` as (host name, command, timeout); ``running`` counts
    the commands in flight per host and ``max_running`` the most seen at once.
    """

    def __init__(self, respond: Responder | None = None) -> None:
        self.respond = respond or ok_responder
        self.calls: list[tuple[str, str, float]] = []
        self.running: dict[str, int] = {}
        self.max_running: dict[str, int] = {}

    async def run(self, host: Host, command: str, *, timeout: float) -> CommandResult:  # noqa: ASYNC109
        name = str(host.name)
        self.calls.append((name, command, timeout))
        self.running[name] = self.running.get(name, 0) + 1
        self.max_running[name] = max(self.max_running.get(name, 0), self.running[name])
        try:
            return await self.respond(host, command, timeout)
        finally:
            self.running[name] -= 1

    async def aclose(self) -> None:
        return None

    def commands(self, host_name: str | None = None) -> list[str]:
        return [c for h, c, _ in self.calls if host_name is None or h == host_name]


def result(
    host: Host,
    command: str,
    *,
    exit_status: int | None = 0,
    stdout: str = "",
    stderr: str = "",
    timed_out: bool = False,
    duration_s: float = 0.01,
) -> CommandResult:
    return CommandResult(
        host=host.name,
        command=command,
        exit_status=None if timed_out else exit_status,
        stdout=stdout,
        stderr=stderr,
        duration_s=duration_s,
        timed_out=timed_out,
    )


async def ok_responder(host: Host, command: str, limit: float) -> CommandResult:
    await asyncio.sleep(0)
    return result(host, command)
