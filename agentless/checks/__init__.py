"""Check types: their configuration models, the probe command each runs, and its parser."""

from agentless.checks.config import CONFIG_MODELS, ProbeConfig

__all__ = ["CONFIG_MODELS", "ProbeConfig"]
