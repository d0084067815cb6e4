"""Turn pydantic's validation errors into one clear, located finding each."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from agentless.checks.config import CONFIG_MODELS
from reconciler.findings import Finding, Severity
from reconciler.model.common import IDENTIFIER_PATTERN, IDENTIFIER_RULE
from reconciler.source import YamlDocument

_ID_FIELDS = {"id", "name", "dependencies", "component", "action", "map", "maps"}


def explain(exc: ValidationError, doc: YamlDocument) -> Iterator[Finding]:
    """One finding per error of ``exc``, at the node of ``doc`` it concerns."""
    for error in exc.errors(include_url=False):
        path = doc.data_path(error["loc"])
        code, message = _describe(error, path)
        yield Finding(doc.locate(path), Severity.ERROR, code, message)


def _describe(error: ErrorDetails, path: tuple[str | int, ...]) -> tuple[str, str]:
    kind = error["type"]
    loc = [part for part in error["loc"] if isinstance(part, str | int)]
    field = next((p for p in reversed(loc) if isinstance(p, str) and p not in CONFIG_MODELS), "")
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    value = error.get("input")
    where = _where(path)
    if kind == "extra_forbidden":
        return "unknown-key", f"unknown key '{field}'{_did_you_mean(field)}{where}"
    if kind == "missing":
        return "missing-key", f"missing required key '{field}'{where}"
    if kind == "union_tag_invalid":
        expected = ctx.get("expected_tags", "")
        return (
            "unknown-check-type",
            f"unknown check type {ctx.get('tag')!r} (known types: {expected})",
        )
    if kind == "union_tag_not_found":
        return "missing-key", f"missing required key 'type'{where}"
    if kind == "literal_error":
        noun = {"role": "role", "allow": "verb", "deny": "verb", "transport": "transport"}
        name = noun.get(field) or noun.get(str(loc[-2]) if len(loc) > 1 else "", "value")
        if len(loc) > 2 and loc[-3] == "actions":
            return "bad-decision", f"{value!r} must be 'allow' or 'deny'{where}"
        return (
            f"unknown-{name}",
            f"unknown {name} {value!r} (expected {ctx.get('expected')}){where}",
        )
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == IDENTIFIER_PATTERN:
        return "bad-id", f"{field} {value!r} is not a valid id: use {IDENTIFIER_RULE}"
    if kind in {"greater_than", "greater_than_equal"} and field.endswith("_secs"):
        return "not-positive", f"'{field}' must be positive, got {value!r}{where}"
    if field == "port" and kind in {"less_than_equal", "greater_than_equal"}:
        return "bad-port", f"port {value!r} is out of range 1-65535{where}"
    if kind in {"value_error", "assertion_error"}:
        text = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        code = "bad-check-config" if "config" in loc else "invalid-value"
        return code, text + where
    code = "bad-check-config" if "config" in loc else "invalid-value"
    subject = f"'{field}'" if field else "value"
    return code, f"{subject}: {error['msg'][0].lower()}{error['msg'][1:]}{where}"


def _where(path: tuple[str | int, ...]) -> str:
    """A short reminder of the node, e.g. ' (in components[2].checks[0])'."""
    if len(path) < 2:
        return ""
    text = ""
    for part in path[:-1] if isinstance(path[-1], str) else path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return f" (in {text})"


def _did_you_mean(key: str) -> str:
    close = difflib.get_close_matches(key, _known_keys(), n=1, cutoff=0.75)
    return f" (did you mean '{close[0]}'?)" if close else ""


@cache
def _known_keys() -> tuple[str, ...]:
    from reconciler.model import (
        Action,
        Component,
        HostEntry,
        InventoryFile,
        Map,
        PolicyBinding,
        PolicyFile,
        Request,
        Settings,
    )
    from reconciler.model.maps import CheckBase, CompletionCheckBase, Selector
    from reconciler.model.policies import Overrides, VerbRules

    models: list[type[BaseModel]] = [
        Action, Component, HostEntry, InventoryFile, Map, PolicyBinding, PolicyFile, Request,
        Settings, CheckBase, CompletionCheckBase, Selector, Overrides, VerbRules,
        *CONFIG_MODELS.values(),
    ]  # fmt: skip
    keys = {
        alias or name for m in models for name, f in m.model_fields.items() for alias in [f.alias]
    }
    return tuple(sorted(keys))
