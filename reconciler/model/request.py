"""Action requests (``requests/**/*.yaml``): one file asks for one declared action."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from agentless.inventory import HOST_NAME_PATTERN
from reconciler.model.common import ActionNameField, ComponentIdField, MapNameField, StrictModel


class Request(StrictModel):
    """Asks for one declared action. It names no command: only the map's actions can run."""

    map: MapNameField
    component: ComponentIdField | Literal["*"] = Field(
        description="A component id, or '*' for the whole map (start, stop, restart)"
    )
    action: ActionNameField
    reason: str = Field(min_length=1, max_length=2000)
    hosts: list[str] | None = Field(
        default=None,
        description="Only these inventory hosts (names); every matching host when absent",
    )

    @field_validator("reason")
    @classmethod
    def _reason_given(cls, reason: str) -> str:
        if not reason.strip():
            raise ValueError("reason is blank")
        return reason

    @field_validator("hosts")
    @classmethod
    def _host_names(cls, hosts: list[str] | None) -> list[str] | None:
        import re

        for host in hosts or []:
            if not re.match(HOST_NAME_PATTERN, host):
                raise ValueError(f"{host!r} is not a host name")
        return hosts
