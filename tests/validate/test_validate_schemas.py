"""The JSON Schemas in ``schemas/`` accept the project's examples and reject typos (item 3)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from validate_support import PROJECT

from agentless.inventory import InventoryFile
from reconciler.model import Map, PolicyFile, Request, Settings
from reconciler.repo.loader import kind_of, read_tree
from reconciler.repo.yamlparse import parse_yaml

SCHEMAS = PROJECT / "schemas"
KINDS = ("map", "policy", "inventory", "request", "settings")
MODELS = {
    "map": Map,
    "policy": PolicyFile,
    "inventory": InventoryFile,
    "request": Request,
    "settings": Settings,
}


def schema_path(kind: str) -> Path | None:
    for name in (f"{kind}.schema.json", f"{kind}.json"):
        if (SCHEMAS / name).is_file():
            return SCHEMAS / name
    return None


def validator(kind: str) -> jsonschema.protocols.Validator:
    path = schema_path(kind)
    if path is None:
        pytest.skip(f"no schema for {kind!r} in {SCHEMAS}: run python -m reconciler.model.schemas")
    schema = json.loads(path.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def messages(kind: str, data: dict[str, Any]) -> list[str]:
    return [e.message for e in validator(kind).iter_errors(data)]


EXAMPLES = sorted((file.path, file.kind) for file in read_tree(PROJECT) if file.kind in KINDS)


def test_every_kind_has_a_schema() -> None:
    missing = [kind for kind in KINDS if schema_path(kind) is None]
    assert not missing, f"schemas/ lacks {missing}: run python -m reconciler.model.schemas"


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.json")), ids=lambda p: p.name)
def test_schema_is_a_valid_json_schema(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validators.validator_for(schema).check_schema(schema)
    assert schema.get("additionalProperties") is False, "the top level must refuse unknown keys"


def test_examples_exist() -> None:
    kinds = {kind for _, kind in EXAMPLES}
    assert {"map", "policy", "inventory"} <= kinds, EXAMPLES


@pytest.mark.parametrize(("rel", "kind"), EXAMPLES, ids=[rel for rel, _ in EXAMPLES])
def test_example_validates_against_its_schema(rel: str, kind: str) -> None:
    assert kind_of(rel) == kind
    doc = parse_yaml((PROJECT / rel).read_bytes(), rel)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator(kind).iter_errors(doc.data)
    ]
    assert errors == []


VALID: dict[str, dict[str, Any]] = {
    "map": {
        "name": "shop",
        "components": [
            {
                "id": "api",
                "hosts": {"labels": {"role": "app"}},
                "checks": [
                    {"name": "up", "type": "tcp", "config": {"port": 80}, "interval_secs": 30},
                    {"name": "mem", "type": "native:memory", "config": {"warning_percent": 70}},
                ],
                "actions": [
                    {
                        "name": "start",
                        "command": "systemctl start api",
                        "async": True,
                        "completion_check": {"type": "http", "config": {"url": "http://x/"}},
                    }
                ],
            }
        ],
        "permissions": [{"group": "ops", "role": "operator"}],
    },
    "policy": {
        "groups": {"ops": ["ana@example.org"]},
        "permissions": [{"group": "ops", "role": "viewer", "maps": ["shop"]}],
    },
    "inventory": {
        "defaults": {"user": "opsmap", "port": 22},
        "hosts": [{"name": "app-1", "address": "10.0.0.1", "labels": {"role": "app"}}],
    },
    "request": {"map": "shop", "component": "api", "action": "start", "reason": "deploy"},
    "settings": {"require_signed_commits": False, "poll_interval_secs": 30},
}

# (kind, where to put the typo: a path of keys and indexes, the typo'd key)
TYPOS = [
    ("map", (), "componets"),
    ("map", ("components", 0), "dependancies"),
    ("map", ("components", 0, "checks", 0), "intervall_secs"),
    ("map", ("components", 0, "checks", 0, "config"), "hots"),
    ("map", ("components", 0, "checks", 1, "config"), "warning_percnt"),
    ("map", ("components", 0, "actions", 0), "confirmation_requried"),
    ("map", ("components", 0, "actions", 0, "completion_check"), "timout_secs"),
    ("map", ("components", 0, "hosts"), "lables"),
    ("map", ("permissions", 0), "overides"),
    ("policy", (), "permisions"),
    ("policy", ("permissions", 0), "map"),
    ("inventory", ("defaults",), "identityfile"),
    ("inventory", ("hosts", 0), "adress"),
    ("request", (), "reasn"),
    ("request", (), "command"),
    ("settings", (), "poll_intervall_secs"),
]


@pytest.mark.parametrize("kind", KINDS)
def test_valid_documents_pass_both_schema_and_model(kind: str) -> None:
    assert messages(kind, VALID[kind]) == []
    MODELS[kind].model_validate(VALID[kind])


@pytest.mark.parametrize(("kind", "where", "typo"), TYPOS, ids=[f"{k}-{t}" for k, _, t in TYPOS])
def test_schema_rejects_a_typo(kind: str, where: tuple[str | int, ...], typo: str) -> None:
    data = copy.deepcopy(VALID[kind])
    node: Any = data
    for part in where:
        node = node[part]
    node[typo] = 1
    found = messages(kind, data)
    assert found, f"the {kind} schema accepts the unknown key {typo!r} at {where}"


@pytest.mark.parametrize(
    ("kind", "change"),
    [
        ("map", lambda d: d["components"][0].update(id="Api")),
        ("map", lambda d: d["components"][0]["checks"][0].update(type="snmp")),
        ("map", lambda d: d["components"][0]["checks"][0]["config"].update(port=0)),
        ("map", lambda d: d["components"][0]["checks"][0].update(interval_secs=0)),
        ("map", lambda d: d["components"][0]["actions"][0].pop("command")),
        ("map", lambda d: d["permissions"][0].update(role="root")),
        ("inventory", lambda d: d["hosts"][0].update(port=70000)),
        ("request", lambda d: d.pop("reason")),
    ],
    ids=["bad-id", "check-type", "port", "interval", "no-command", "role", "host-port", "reason"],
)
def test_schema_rejects_what_the_model_rejects(kind: str, change: Any) -> None:
    data = copy.deepcopy(VALID[kind])
    change(data)
    assert messages(kind, data), f"the {kind} schema accepts {data}"
