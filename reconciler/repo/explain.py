"""Turn pydantic's validation errors into one clear, located finding each.

Every pydantic error OpsMap shows is worded here: those of a YAML document as located
findings (:func:`explain`), those of input that came from no document, such as a
command's flags, as one line (:func:`explain_input`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from agentless.checks.config import CONFIG_MODELS
from reconciler.findings import Finding, Severity
from reconciler.inert import excerpt
from reconciler.model.common import IDENTIFIER_PATTERN, IDENTIFIER_RULE, MIN_INTERVAL_SECS
from reconciler.repo.yamlparse import YamlDocument

_ID_FIELDS = {"id", "name", "dependencies", "component", "action", "map", "maps"}


def explain(exc: ValidationError, doc: YamlDocument) -> Iterator[Finding]:
    """One finding per error of ``exc``, at the node of ``doc`` it concerns."""
    for error in exc.errors(include_url=False):
        loc = _without_union_tags(error["loc"])
        path = doc.data_path(loc)
        code, message = _describe(error, loc, path, doc)
        if code == "unknown-check-type":
            path = (*path, "type")
        yield Finding(doc.locate(path), Severity.ERROR, code, message)


def explain_input(exc: ValidationError, *, whole_map_field: str | None = None) -> str:
    """The first error of input that came from no document (a command's flags), in the
    words of the field it is about. ``whole_map_field`` is the field that may also be
    ``'*'`` (a request's ``component``)."""
    error = exc.errors(include_url=False)[0]
    loc = _without_union_tags(error["loc"])
    field = str(loc[0]) if loc else "input"  # a flag: a top-level field (its union tags after)
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if error["type"] == "string_pattern_mismatch" and ctx.get("pattern") == IDENTIFIER_PATTERN:
        star = " (or '*' for the whole map)" if field == whole_map_field else ""
        return f"{field} {excerpt(error.get('input'))}: use {IDENTIFIER_RULE}{star}"
    return _describe(error, loc, tuple(loc), None)[1]


def _without_union_tags(loc: tuple[str | int, ...]) -> list[str | int]:
    """``loc`` less the check-type tags pydantic inserts after a check (``…, 3, 'tcp', …``)."""
    kept: list[str | int] = []
    for i, part in enumerate(loc):
        after_check = i >= 2 and isinstance(loc[i - 1], int) and loc[i - 2] == "checks"
        after_completion = i >= 1 and loc[i - 1] == "completion_check"
        if (after_check or after_completion) and part in CONFIG_MODELS:
            continue
        kept.append(part)
    return kept


def _describe(
    error: ErrorDetails,
    loc: list[str | int],
    path: tuple[str | int, ...],
    doc: YamlDocument | None,
) -> tuple[str, str]:
    kind = error["type"]
    field = next((p for p in reversed(loc) if isinstance(p, str)), "")
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    value = error.get("input")
    # the node the message is about: the key's parent when the key is in ``path``
    where = _where(path[:-1] if path and path[-1] == field else path)
    if kind == "extra_forbidden":
        siblings = _keys_at(doc, path[:-1]) if doc is not None else set()
        return "unknown-key", f"unknown key {excerpt(field)}{_did_you_mean(field, siblings)}{where}"
    if kind == "missing":
        return "missing-key", f"missing required key '{field}'{where}"
    if kind == "union_tag_invalid":
        expected = ctx.get("expected_tags", "")
        return (
            "unknown-check-type",
            f"unknown check type {excerpt(ctx.get('tag'))} (known types: {expected})",
        )
    if kind == "union_tag_not_found":
        return "missing-key", f"missing required key 'type'{_where(path)}"
    if kind == "literal_error":
        noun = {"role": "role", "allow": "verb", "deny": "verb", "transport": "transport"}
        name = noun.get(field) or noun.get(str(loc[-2]) if len(loc) > 1 else "", "value")
        if len(loc) > 2 and loc[-3] == "actions":
            return "bad-decision", f"{excerpt(value)} must be 'allow' or 'deny'{where}"
        return (
            f"unknown-{name}",
            f"unknown {name} {excerpt(value)} (expected {ctx.get('expected')}){where}",
        )
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == IDENTIFIER_PATTERN:
        return "bad-id", f"{field} {excerpt(value)} is not a valid id: use {IDENTIFIER_RULE}{where}"
    if (
        kind == "greater_than_equal"
        and field.endswith("_secs")
        and ctx.get("ge") == MIN_INTERVAL_SECS
    ):
        return (
            "interval-too-short",
            f"'{field}' must be at least {MIN_INTERVAL_SECS:g} s (anything shorter would keep "
            f"the reconciler busy), got {excerpt(value)}{where}",
        )
    if kind in {"greater_than", "greater_than_equal"} and field.endswith("_secs"):
        return "not-positive", f"'{field}' must be positive, got {excerpt(value)}{where}"
    if field == "port" and kind in {"less_than_equal", "greater_than_equal"}:
        return "bad-port", f"port {excerpt(value)} is out of range 1-65535{where}"
    code = "bad-check-config" if "config" in loc else "invalid-value"
    if kind in {"value_error", "assertion_error"}:
        text = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        return code, text + where
    subject = f"'{field}'" if field else "value"
    return code, f"{subject}: {error['msg'][0].lower()}{error['msg'][1:]}{where}"


def _where(path: tuple[str | int, ...]) -> str:
    """A short reminder of the node, e.g. ' (in components[2].checks[0])'."""
    if not path:
        return ""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return f" (in {text if len(text) <= 120 else text[:119] + '…'})"  # keys may be long


def _keys_at(doc: YamlDocument, path: tuple[str | int, ...]) -> set[str]:
    node: Any = doc.data
    for part in path:
        node = node[part]
    return set(node) if isinstance(node, dict) else set()


def _did_you_mean(key: str, siblings: set[str]) -> str:
    """A close key among those of the models that could hold this mapping's other keys."""
    others = siblings - {key}
    candidates = [keys for keys in _model_keys() if others <= keys] or _model_keys()
    known = sorted(set().union(*candidates))
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    return f" (did you mean '{close[0]}'?)" if close else ""


@cache
def _model_keys() -> list[frozenset[str]]:
    """The keys each repo model accepts (aliases as written in YAML)."""
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
    from reconciler.model.policies import Overrides, Signer, VerbRules
    from reconciler.model.settings import AuditSettings, CheckDefaults

    models: list[type[BaseModel]] = [
        Action, Component, HostEntry, InventoryFile, Map, PolicyBinding, PolicyFile, Request,
        Settings, CheckBase, CompletionCheckBase, Selector, Overrides, VerbRules, Signer,
        AuditSettings, CheckDefaults, *CONFIG_MODELS.values(),
    ]  # fmt: skip
    return [
        frozenset(field.alias or name for name, field in model.model_fields.items())
        for model in models
    ]
