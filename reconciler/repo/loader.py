"""Loading a map repo: find its files, parse each as what its folder says, keep the models.

A repo is read from any source of ``(path, bytes)`` pairs, so the same code reads a working
tree (:func:`read_tree`) and, in the reconciler, a commit.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from agentless.inventory import Host, InventoryFile, resolve_hosts
from reconciler.findings import Finding, Location, Severity
from reconciler.model import Map, PolicyFile, Request, Settings
from reconciler.repo.explain import explain
from reconciler.repo.forkparse import parse_all
from reconciler.repo.yamlparse import (
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

SYMLINK_REFUSAL = ("symlink", "is a symlink: OpsMap reads only the repo's own files, never a link")

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class RepoFile:
    """One file of a repo: its path inside the repo, its kind, how to read it."""

    path: str
    kind: Kind
    read: Callable[[], bytes]
    size: int | None = None
    display: str = ""
    refused: tuple[str, str] | None = None
    """``(code, message)`` for an entry OpsMap does not open: a symlink, a FIFO, a device."""

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
    """The OpsMap files of a working tree, in a stable order, without following a symlink.

    A symlink at an OpsMap place (``opsmap.yaml``, a top-level folder, anything below one)
    and a YAML name that is not a regular file (a FIFO, a device) are entries with
    ``refused`` set: they become findings, and nothing behind them is opened or listed.
    """

    def entry(rel: str, kind: Kind, info: os.stat_result | None) -> RepoFile:
        shown = os.path.join(display_root, rel) if display_root else rel
        if info is not None and (problem := refusal(info)) is not None:
            return RepoFile(rel, kind, _refused_read, info.st_size, shown, problem)
        size = info.st_size if info is not None else None
        return RepoFile(rel, kind, lambda: read_confined(root, rel), size, shown)

    for name in (SETTINGS_FILE, "opsmap.yml"):
        info = _lstat(root / name)
        if info is not None and not stat.S_ISDIR(info.st_mode):
            yield entry(name, "settings", info)
    unreadable: list[tuple[str, Kind]] = []
    for folder, kind in FOLDER_KINDS.items():
        info = _lstat(root / folder)
        if info is None:
            continue
        if stat.S_ISLNK(info.st_mode):
            yield entry(folder, kind, info)
            continue
        if not stat.S_ISDIR(info.st_mode):
            continue
        walk = os.walk(
            root / folder,
            onerror=lambda exc, kind=kind: unreadable.append((str(exc.filename), kind)),  # type: ignore[misc]
        )
        for dirpath, dirnames, filenames in walk:
            here = Path(dirpath).relative_to(root).as_posix()
            found = [(name, _lstat(Path(dirpath) / name)) for name in filenames]
            subfolders = []
            for name in (d for d in dirnames if not d.startswith(".")):
                info = _lstat(Path(dirpath) / name)
                if info is not None and stat.S_ISDIR(info.st_mode):
                    subfolders.append(name)
                else:  # a link to a folder: listed as an entry, never walked into
                    found.append((name, info))
            dirnames[:] = sorted(subfolders)
            for name, info in sorted(found, key=lambda item: item[0]):
                rel = f"{here}/{name}"
                if kind_of(rel) is not None or (info is not None and stat.S_ISLNK(info.st_mode)):
                    yield entry(rel, kind, info)
    for path, kind in unreadable:
        rel = Path(path).relative_to(root).as_posix()
        shown = os.path.join(display_root, rel) if display_root else rel
        yield RepoFile(rel, kind, _refused_read, None, shown, ("unreadable", "cannot list"))


def refusal(info: os.stat_result) -> tuple[str, str] | None:
    """Why an entry with this ``lstat`` is not opened, or None for a regular file."""
    mode = info.st_mode
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return SYMLINK_REFUSAL
    what = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else None
    what = what or ("a socket" if stat.S_ISSOCK(mode) else "a device or special file")
    return "not-a-file", f"is {what}, not a regular file: not opened"


def read_confined(root: Path, rel: str) -> bytes:
    """The bytes of ``root/rel``, opened without following a symlink at any depth below root.

    Every folder below the root and the file itself are opened relative to the one above with
    ``O_NOFOLLOW``, so a link swapped in after the listing is refused too; a file that is
    not regular (a FIFO is opened non-blocking, then refused) or is larger than the limit
    is not read. Raises :class:`OSError`.
    """
    parts = PurePosixPath(rel).parts
    if not parts or any(part in ("..", "/") for part in parts):
        raise OSError(errno.EINVAL, "not a path inside the repo")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(root, os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECTORY)  # the root is the user's
    try:
        for part in parts[:-1]:
            if stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode):
                raise OSError(errno.ELOOP, "a symlink on the way: not followed")
            inner = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        inner = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=fd)
        os.close(fd)
        fd = inner
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        chunks, left = [], MAX_FILE_BYTES + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "a symlink on the way: not followed") from None
        raise
    finally:
        os.close(fd)


def local_file(
    path: Path, shown: str, kind: Kind, *, root: Path | None, rel: str | None
) -> RepoFile:
    """A file named on the command line: confined to ``root`` when it is in a repo.

    ``rel`` is its path inside the repo. Outside a repo only the file itself must not be a
    link (the folders above it are the user's own choice).
    """
    info = _lstat(path)
    if info is not None and (problem := refusal(info)) is not None:
        return RepoFile(shown, kind, _refused_read, info.st_size, shown, problem)
    if root is not None and rel is not None and not rel.startswith(".."):
        return RepoFile(shown, kind, lambda: read_confined(root, rel), None, shown)
    parent = Path(os.path.abspath(path)).parent
    return RepoFile(shown, kind, lambda: read_confined(parent, path.name), None, shown)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _refused_read() -> bytes:
    raise OSError(errno.EPERM, "not opened")


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
    single-threaded commands; see :mod:`reconciler.repo.forkparse`).
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
    if file.refused is not None:
        code, message = file.refused
        return Finding(Location(file.shown), Severity.ERROR, code, message)
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
        code = "symlink" if exc.errno == errno.ELOOP else "unreadable"
        return Finding(Location(file.shown), Severity.ERROR, code, message)


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
