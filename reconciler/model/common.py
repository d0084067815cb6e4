"""Shared building blocks of the map repo model: strict base, identifiers."""

from __future__ import annotations

from typing import Annotated, NewType

from pydantic import BaseModel, ConfigDict, Field

IDENTIFIER_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
IDENTIFIER_RULE = "lowercase letters, digits, '-', '_' and '.', starting with a letter or digit"

MapName = NewType("MapName", str)
ComponentId = NewType("ComponentId", str)
CheckName = NewType("CheckName", str)
ActionName = NewType("ActionName", str)
GroupName = NewType("GroupName", str)
Subject = NewType("Subject", str)
"""A person's identity (an email address, as in commit authors)."""
CommitSha = NewType("CommitSha", str)

MapNameField = Annotated[MapName, Field(pattern=IDENTIFIER_PATTERN, max_length=128)]
ComponentIdField = Annotated[ComponentId, Field(pattern=IDENTIFIER_PATTERN, max_length=128)]
CheckNameField = Annotated[CheckName, Field(pattern=IDENTIFIER_PATTERN, max_length=128)]
ActionNameField = Annotated[ActionName, Field(pattern=IDENTIFIER_PATTERN, max_length=128)]
GroupNameField = Annotated[
    GroupName, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=128)
]
SubjectField = Annotated[
    Subject, Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=254, description="an email address")
]
MIN_INTERVAL_SECS = 1.0
"""The shortest interval a repo may set for anything that repeats (checks, retries,
completion polls, fetches): a PR must not be able to keep the reconciler busy."""

UnixUser = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")]


class StrictModel(BaseModel):
    """Every repo model: an unknown key is an error, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
