"""Repo settings (``opsmap.yaml``): how the reconciler follows and treats this repo."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from reconciler.model.common import MIN_INTERVAL_SECS, StrictModel
from reconciler.model.masking import MAX_PATTERN_CHARS, MAX_PATTERNS, Masker, pattern_problem


class CheckDefaults(StrictModel):
    max_check_attempts: int = Field(default=3, ge=1, le=20)
    retry_interval_secs: float = Field(default=10, ge=MIN_INTERVAL_SECS, le=3600)
    flap_low_percent: float = Field(default=20, ge=0, le=100)
    flap_high_percent: float = Field(default=30, ge=0, le=100)


class AuditSettings(StrictModel):
    notes_ref: str = Field(default="refs/notes/opsmap", pattern=r"^refs/notes/[A-Za-z0-9._/-]+$")
    push: bool = True


FORGE_URL_PATTERN = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~-]+)+$"


class Forge(StrictModel):
    """Where the repo lives: the status page links each action to the forge's new-file
    page with the request prefilled (the pull request is then one click away)."""

    kind: Literal["github", "gitlab"]
    url: str = Field(
        max_length=500,
        pattern=FORGE_URL_PATTERN,
        description="The repository's web address, e.g. https://github.com/org/ops-maps "
        "(http or https, a host and a path; no query, fragment or trailing slash)",
    )


def _mask_pattern(pattern: str) -> str:
    problem = pattern_problem(pattern)
    if problem is not None:
        raise ValueError(problem)
    return pattern


MaskPattern = Annotated[
    str,
    Field(min_length=1, max_length=MAX_PATTERN_CHARS),
    AfterValidator(_mask_pattern),
]


class Settings(StrictModel):
    """``opsmap.yaml``: how the reconciler follows and treats this repo."""

    branch: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._/-]+$",
        description="Ignored, with a warning: opsmap run follows its --branch (default: the "
        "remote's default branch). "
        "A repo cannot name the branch it is read from, or a pull request could point the "
        "reconciler at an unreviewed one.",
    )
    poll_interval_secs: float = Field(
        default=30,
        ge=MIN_INTERVAL_SECS,
        le=86400,
        description="Seconds between asks for the remote's head, with jitter, once this "
        "revision is applied (opsmap run --poll-interval overrides it)",
    )
    require_signed_commits: bool = False
    checks: CheckDefaults = Field(default_factory=CheckDefaults)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    forge: Forge | None = Field(
        default=None, description="The forge hosting this repo, for the status page's links"
    )
    mask: list[MaskPattern] = Field(
        default_factory=list,
        max_length=MAX_PATTERNS,
        description="Regular expressions whose matches are replaced by *** in every check "
        "message and action output excerpt before it is stored, shown or pushed; varying "
        "quantifiers must be possessive (*+, ++, ?+, {m,n}+)",
    )

    def masker(self) -> Masker:
        """The compiled ``mask`` patterns."""
        return Masker.of(self.mask)
