"""Helpers for the action tests (in tests/support, on pytest's pythonpath)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

import yaml
from sshd import Fleet

from agentless.backoff import Backoff
from agentless.inventory import Host
from agentless.result import HostName
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
