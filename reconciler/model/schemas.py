"""Generate the JSON Schemas from the models, or check that they match.

python -m reconciler.model.schemas            write schemas/*.schema.json and
                                              reconciler/schemas/*.schema.json
python -m reconciler.model.schemas --check    exit 1 if a file differs (CI's drift check)

``schemas/`` is what editors' modelines name (``../schemas/map.schema.json``);
``reconciler/schemas/`` is the same files as package data, so the wheel carries them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import BaseModel

from agentless.inventory import InventoryFile
from reconciler.model import Map, PolicyFile, Request, Settings

SCHEMAS: dict[str, tuple[type[BaseModel], str]] = {
    "map": (Map, "An OpsMap map: maps/*.yaml"),
    "policy": (PolicyFile, "OpsMap policies: groups, bindings, signers (policies/*.yaml)"),
    "inventory": (
        InventoryFile,
        "OpsMap inventory: hosts and how to reach them (inventory/*.yaml)",
    ),
    "request": (Request, "An OpsMap action request (requests/**/*.yaml)"),
    "settings": (Settings, "OpsMap repo settings (opsmap.yaml)"),
}
ID_PREFIX = "urn:opsmap:schema:"
DIRS = ("schemas", "reconciler/schemas")


def render(name: str) -> str:
    model, title = SCHEMAS[name]
    schema = model.model_json_schema(by_alias=True, mode="validation")
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{ID_PREFIX}{name}",
        "title": title,
        **{k: v for k, v in schema.items() if k != "title"},
    }
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reconciler.model.schemas", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a schema file differs")
    parser.add_argument(
        "--dir", type=Path, action="append", help=f"(repeatable; default {' and '.join(DIRS)})"
    )
    args = parser.parse_args(argv)
    stale = []
    for folder, name in ((d, n) for d in args.dir or map(Path, DIRS) for n in SCHEMAS):
        path = folder / f"{name}.schema.json"
        text = render(name)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(str(path))
        else:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(
            "schemas are out of date with the models: " + ", ".join(stale) + "\n"
            "run: python -m reconciler.model.schemas",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
