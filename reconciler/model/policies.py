"""Permissions: roles, bindings of groups or users to roles, overrides, group membership."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from reconciler.model.common import (
    ActionNameField,
    ComponentIdField,
    GroupNameField,
    MapNameField,
    StrictModel,
    SubjectField,
)
from reconciler.model.vocabulary import BUILTIN_VERBS, Verb

__all__ = ["BUILTIN_VERBS", "ROLE_VERBS", "Binding", "PolicyBinding", "Verb"]

Role = Literal["viewer", "operator", "admin"]
Decision = Literal["allow", "deny"]

ROLE_VERBS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"view", "logs"}),
    "operator": BUILTIN_VERBS,
}
"""Verbs each role grants. ``admin`` grants every verb and every custom action."""


class VerbRules(StrictModel):
    """Verbs allowed or denied on one component."""

    allow: list[Verb] = Field(default_factory=list)
    deny: list[Verb] = Field(default_factory=list)


class Overrides(StrictModel):
    """Per-component verb rules and per-action decisions that adjust a role."""

    components: dict[ComponentIdField, VerbRules] = Field(default_factory=dict)
    actions: dict[ComponentIdField, dict[ActionNameField, Decision]] = Field(default_factory=dict)


class Binding(StrictModel):
    """Grants a role to a group or to one user, with optional overrides."""

    group: GroupNameField | None = None
    user: SubjectField | None = None
    role: Role
    overrides: Overrides = Field(default_factory=Overrides)

    @model_validator(mode="after")
    def _one_subject(self) -> Binding:
        if (self.group is None) == (self.user is None):
            raise ValueError("a binding names exactly one of 'group' or 'user'")
        return self


class PolicyBinding(Binding):
    """A binding in ``policies/``: it applies to the maps it names, or to every map."""

    maps: list[MapNameField] | None = Field(
        default=None, description="Maps this binding applies to; every map when absent"
    )


_SIGNER_IDENTITY = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+")
_SIGNER_KEY = re.compile(
    r"(ssh-[a-z0-9-]+|ecdsa-sha2-nistp\d+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/]+=*(?: [^\x00-\x1f\x7f]*)?"
)


def signer_problem(identity: str, key: str) -> str | None:
    """Why this signer can verify no commit; None when it can.

    Only plain emails and one-line OpenSSH public keys reach git's allowed-signers file: a
    comma or a ``*`` in an identity would be a pattern there, a newline a second line.
    """
    if not _SIGNER_IDENTITY.fullmatch(identity):
        return f"identity {identity!r} is not a plain email address (letters, digits, ._%+-)"
    if not _SIGNER_KEY.fullmatch(key.strip()):
        return "key is not one OpenSSH public key ('ssh-ed25519 AAAA…'); GPG keys are not supported"
    return None


class Signer(StrictModel):
    """A key allowed to sign commits for an identity (``require_signed_commits``)."""

    identity: SubjectField
    key: str = Field(
        min_length=1,
        description="SSH public key ('ssh-ed25519 AAAA…'), one line; GPG keys are not supported",
    )


class PolicyFile(StrictModel):
    """One ``policies/*.yaml`` file: groups of people, bindings, allowed signers."""

    description: str | None = None
    groups: dict[GroupNameField, list[SubjectField]] = Field(default_factory=dict)
    permissions: list[PolicyBinding] = Field(default_factory=list)
    signers: list[Signer] = Field(default_factory=list)
