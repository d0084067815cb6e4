"""Loading a map repo: find its files, parse each as what its folder says, keep the models.

A repo is read from any source of ``(path, bytes)`` pairs, so the same code reads a working
tree (:func:`read_tree`) and, in the reconciler, a commit.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from agentless.inventory import Host, InventoryFile, resolve_hosts
from reconciler.findings import Finding, Location, Severity
from reconciler.forkparse import parse_all
from reconciler.model import Map, PolicyFile, Request, Settings
from reconciler.model.explain import explain
from reconciler.source import (
    MAX_FILE_BYTES,
    DocumentParts,
    YamlDocument,
    YamlError,
    bulk_loading,
    parse_yaml_parts,
)

Kind = Literal["map", "policy", "inventory", "request", "settings"]
FOLDER_KINDS: dict[str, Kind] = {
    "maps": "map",
    "policies": "policy",
    "inventory": "inventory",
    "requests": "request",
}
SETTINGS_FILE = "opsmap.yaml"
YAML_SUFFIXES = (".yaml", ".yml")

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class RepoFile:
    """One file of a repo: its path inside the repo, its kind, how to read it."""

    path: str
    kind: Kind
    read: Callable[[], bytes]
    size: int | None = None
    display: str = ""

    @property
    def shown(self) -> str:
        return self.display or self.path


@dataclass(frozen=True, slots=True)
class Loaded(Generic[M]):
    """A model together with the document it came from (for locations)."""

    model: M
    doc: YamlDocument


@dataclass
class MapRepo:
    """Everything a map repo holds that parsed and validated, plus the findings so far."""

    maps: list[Loaded[Map]] = field(default_factory=list)
    policies: list[Loaded[PolicyFile]] = field(default_factory=list)
    inventories: list[Loaded[InventoryFile]] = field(default_factory=list)
    requests: list[Loaded[Request]] = field(default_factory=list)
    settings: Loaded[Settings] | None = None
    findings: list[Finding] = field(default_factory=list)
    broken_files: set[str] = field(default_factory=set)
    unloaded_maps: set[str] = field(default_factory=set)
    """Names of maps whose file has errors: references to them are not reported again."""

    @property
    def hosts(self) -> list[Host]:
        return resolve_hosts(inv.model for inv in self.inventories)

    def map(self, name: str) -> Map | None:
        return next((m.model for m in self.maps if m.model.name == name), None)

    @property
    def effective_settings(self) -> Settings:
        return self.settings.model if self.settings else Settings()


def kind_of(path: str) -> Kind | None:
    """What a repo-relative path holds, by its folder; None for files OpsMap ignores."""
    pure = PurePosixPath(path)
    if pure.suffix not in YAML_SUFFIXES:
        return None
    if str(pure) in (SETTINGS_FILE, "opsmap.yml"):
        return "settings"
    if len(pure.parts) < 2:
        return None
    return FOLDER_KINDS.get(pure.parts[0])


def read_tree(root: Path, *, display_root: str = "") -> Iterator[RepoFile]:
    """The OpsMap files of a working tree, in a stable order."""
    candidates = [root / SETTINGS_FILE, root / "opsmap.yml"]
    for folder in FOLDER_KINDS:
        base = root / folder
        if base.is_dir():
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                candidates.extend(Path(dirpath) / name for name in sorted(filenames))
    for path in candidates:
        if not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        kind = kind_of(rel)
        if kind is None:
            continue
        shown = os.path.join(display_root, rel) if display_root else rel
        yield RepoFile(rel, kind, path.read_bytes, path.stat().st_size, shown)


_MODELS: dict[Kind, type[BaseModel]] = {
    "map": Map,
    "policy": PolicyFile,
    "inventory": InventoryFile,
    "request": Request,
    "settings": Settings,
}


def load_repo(files: Iterable[RepoFile], *, parallel: bool = False) -> MapRepo:
    """Parse and validate every file; a broken file is reported and left out.

    With ``parallel``, a large repo is parsed on two processes (for short-lived,
    single-threaded commands; see :mod:`reconciler.forkparse`).
    """
    files = list(files)
    repo = MapRepo()
    checked: list[tuple[DocumentParts, BaseModel | ValidationError] | Finding | None]
    checked = [None] * len(files)

    def check(index: int, parsed: DocumentParts | Finding) -> None:
        if isinstance(parsed, Finding):
            checked[index] = parsed
            return
        try:
            checked[index] = (parsed, _MODELS[files[index].kind].model_validate(parsed[0]))
        except ValidationError as exc:
            checked[index] = (parsed, exc)

    with bulk_loading():
        if parallel:
            sizes = [file.size or 0 for file in files]
            parse_all(files, _parse_file, sizes=sizes, then=check)
        else:
            for index, file in enumerate(files):
                check(index, _parse_file(file))
        for file, result in zip(files, checked, strict=True):
            assert result is not None
            _add(repo, file, result)
    return repo


def _parse_file(file: RepoFile) -> DocumentParts | Finding:
    """A file's parsed parts, or the finding that says why it cannot be read."""
    if file.size is not None and file.size > MAX_FILE_BYTES:
        size = f"{file.size / 1048576:.1f} MiB"
        limit = f"{MAX_FILE_BYTES // 1048576} MiB"
        message = f"file is {size}, over the {limit} limit"
        return Finding(Location(file.shown), Severity.ERROR, "file-too-large", message)
    try:
        return parse_yaml_parts(file.read(), file.shown)
    except YamlError as exc:
        return Finding(exc.location, Severity.ERROR, exc.code, exc.message)
    except OSError as exc:
        message = f"cannot read: {exc.strerror or exc}"
        return Finding(Location(file.shown), Severity.ERROR, "unreadable", message)


def _add(
    repo: MapRepo,
    file: RepoFile,
    result: tuple[DocumentParts, BaseModel | ValidationError] | Finding,
) -> None:
    if isinstance(result, Finding):
        repo.findings.append(result)
        repo.broken_files.add(file.path)
        return
    parts, model = result
    doc = YamlDocument.from_parts(file.shown, *parts)
    if isinstance(model, ValidationError):
        repo.findings.extend(explain(model, doc))
        repo.broken_files.add(file.path)
        name = doc.data.get("name")
        if file.kind == "map" and isinstance(name, str):
            repo.unloaded_maps.add(name)
        return
    loaded = Loaded(model, doc)
    if file.kind == "map":
        repo.maps.append(loaded)  # type: ignore[arg-type]
    elif file.kind == "policy":
        repo.policies.append(loaded)  # type: ignore[arg-type]
    elif file.kind == "inventory":
        repo.inventories.append(loaded)  # type: ignore[arg-type]
    elif file.kind == "request":
        repo.requests.append(loaded)  # type: ignore[arg-type]
    else:
        repo.settings = loaded  # type: ignore[assignment]
