"""A map: components, their checks, actions, dependencies and permissions."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import Field, ValidationError, create_model, field_validator, model_validator

from agentless.checks.config import CONFIG_MODELS, ProbeConfig
from reconciler.model.common import (
    MIN_INTERVAL_SECS,
    ActionNameField,
    CheckNameField,
    ComponentIdField,
    MapNameField,
    StrictModel,
    UnixUser,
)
from reconciler.model.policies import Binding

Labels = dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")], str]


class Selector(StrictModel):
    """Which inventory hosts a component runs on: those whose labels include all of these."""

    labels: Labels = Field(min_length=1)


class CheckBase(StrictModel):
    """A health check: a probe of ``type`` with its ``config``, run every ``interval_secs``."""

    name: CheckNameField
    type: str
    config: ProbeConfig
    interval_secs: float = Field(default=60, ge=MIN_INTERVAL_SECS, le=86400)
    timeout_secs: float = Field(default=10, gt=0, le=3600)
    max_check_attempts: int | None = Field(
        default=None, ge=1, le=20, description="Soft failures before a hard state (default 3)"
    )
    retry_interval_secs: float | None = Field(default=None, ge=MIN_INTERVAL_SECS, le=86400)


class CompletionCheckBase(StrictModel):
    """A check polled after an async action until it passes or ``timeout_secs`` runs out."""

    type: str
    config: ProbeConfig
    timeout_secs: float = Field(default=60, gt=0, le=3600)
    interval_secs: float = Field(default=2, ge=MIN_INTERVAL_SECS, le=600)


def _variants(base: type[StrictModel], suffix: str) -> tuple[type[Any], ...]:
    """One model per check type, so that ``type`` selects how ``config`` is read."""
    variants = []
    for kind, config_model in CONFIG_MODELS.items():
        try:
            config_model()
            config_field: Any = Field(default_factory=config_model)
        except ValidationError:
            config_field = ...
        title = "".join(part.capitalize() for part in kind.replace(":", "_").split("_"))
        # A Literal built from a runtime value is a type to pydantic, but no static type
        # form to mypy (pydantic >= 2.14 types create_model's fields as TypeForm).
        type_field: Any = Literal[kind]
        variants.append(
            create_model(
                f"{title}{suffix}",
                __base__=base,
                type=(type_field, ...),
                config=(config_model, config_field),
            )
        )
    return tuple(variants)


if TYPE_CHECKING:
    Check = CheckBase
    CompletionCheck = CompletionCheckBase
else:
    Check = Annotated[Union[_variants(CheckBase, "Check")], Field(discriminator="type")]  # noqa: UP007
    CompletionCheck = Annotated[
        Union[_variants(CompletionCheckBase, "CompletionCheck")],  # noqa: UP007
        Field(discriminator="type"),
    ]


class Action(StrictModel):
    """An operation on a component (start, stop, backup…): shell text reviewed in PRs."""

    name: ActionNameField
    label: str | None = None
    description: str | None = None
    command: str = Field(min_length=1)
    is_async: bool = Field(default=False, alias="async")
    confirmation_required: bool = False
    run_as_user: UnixUser | None = None
    timeout_secs: float = Field(default=300, gt=0, le=86400)
    completion_check: CompletionCheck | None = None

    @field_validator("command")
    @classmethod
    def _not_blank(cls, command: str) -> str:
        if not command.strip():
            raise ValueError("command is blank")
        return command


class Component(StrictModel):
    """A part of the platform (a service, a database, a broker) and how to watch and act on it."""

    id: ComponentIdField
    name: str | None = None
    type: str | None = None
    description: str | None = None
    dependencies: list[ComponentIdField] = Field(default_factory=list)
    agent: Selector | None = Field(
        default=None, description="Host selector (the original spelling)"
    )
    hosts: Selector | None = Field(default=None, description="Host selector")
    checks: list[Check] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_selector(self) -> Component:
        if self.agent is not None and self.hosts is not None:
            raise ValueError("give the host selector once: 'hosts' or 'agent', not both")
        return self

    @property
    def selector(self) -> dict[str, str]:
        chosen = self.hosts or self.agent
        return dict(chosen.labels) if chosen else {}

    def action(self, name: str) -> Action | None:
        return next((a for a in self.actions if a.name == name), None)


class Map(StrictModel):
    """One ``maps/*.yaml`` file."""

    name: MapNameField
    version: str | None = None
    description: str | None = None
    components: list[Component] = Field(default_factory=list)
    permissions: list[Binding] = Field(default_factory=list)

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, version: object) -> object:
        return str(version) if isinstance(version, int | float) else version

    def component(self, component_id: str) -> Component | None:
        """The first component with this id (a lookup: callers ask for every one in turn)."""
        return self._by_id.get(component_id)

    @functools.cached_property
    def _by_id(self) -> dict[str, Component]:
        found: dict[str, Component] = {}
        for component in self.components:
            found.setdefault(component.id, component)
        return found
