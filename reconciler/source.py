"""Reading YAML safely, with the line and column of every node.

PyYAML alone is not enough for a CI gate: it keeps the last of two duplicate keys, it
expands alias bombs, and its values forget where they came from. Here a file is composed
into nodes (libyaml when available), then built into plain Python values by our own walk,
which refuses duplicate keys, non-standard tags, deep nesting and runaway alias
expansion, and records the position of every mapping key and sequence item.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.findings import Location

MAX_FILE_BYTES = 4 * 1024 * 1024
"""Larger files are refused unread: a map repo file is a few kilobytes."""
MAX_ALIAS_NODES = 100_000
"""How many nodes aliases may expand to in one file before it is called an alias bomb."""
MAX_DEPTH = 64
"""Deepest nesting accepted (a map is about 8 levels deep)."""

_TAG = "tag:yaml.org,2002:"
_MAP, _SEQ, _STR, _MERGE = _TAG + "map", _TAG + "seq", _TAG + "str", _TAG + "merge"
_CONSTRUCTED = {_TAG + "int", _TAG + "float", _TAG + "bool", _TAG + "null"}
_AS_TEXT = {_STR, _TAG + "timestamp"}

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_scalars = SafeConstructor()

YamlPath = tuple[str | int, ...]


class YamlError(Exception):
    """A file that cannot be read as an OpsMap YAML document."""

    def __init__(self, location: Location, message: str, code: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message
        self.code = code


@dataclass(slots=True)
class YamlDocument:
    """A parsed file: its data and where each key or item sits in the source."""

    path: str
    data: dict[str, Any]
    positions: dict[YamlPath, tuple[int, int]] = field(repr=False)

    def locate(self, path: Sequence[str | int] = ()) -> Location:
        """The position of the deepest node of ``path`` that exists in the file."""
        for end in range(len(path), 0, -1):
            pos = self.positions.get(tuple(path[:end]))
            if pos is not None:
                return Location(self.path, pos[0], pos[1])
        line, column = self.positions.get((), (1, 1))
        return Location(self.path, line, column)

    def data_path(self, loc: Sequence[str | int]) -> YamlPath:
        """The elements of a validator's ``loc`` that name real keys or indexes.

        Validators add elements of their own (a union's tag, a validator's name), and a
        missing key is not in the file: those are dropped, so the path can be located.
        """
        path: list[str | int] = []
        node: Any = self.data
        for part in loc:
            found, child = _child(node, part)
            if found:
                node = child
                path.append(part)
        return tuple(path)


def _child(node: Any, part: str | int) -> tuple[bool, Any]:
    if isinstance(node, dict) and part in node:
        return True, node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return True, node[part]
    return False, None


def parse_yaml(raw: bytes, path: str) -> YamlDocument:
    """Parse one file's bytes; raise :class:`YamlError` with a location for any problem."""
    if len(raw) > MAX_FILE_BYTES:
        raise YamlError(
            Location(path),
            f"file is {len(raw) / 1048576:.1f} MiB, over the {MAX_FILE_BYTES // 1048576} MiB limit",
            "file-too-large",
        )
    text = _decode(raw, path)
    if not text.strip():
        raise YamlError(Location(path), "file is empty", "empty-file")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, path) from None
    except yaml.YAMLError as exc:
        raise YamlError(Location(path), f"YAML error: {exc}", "yaml-syntax") from None
    finally:
        loader.dispose()
    if node is None:
        raise YamlError(Location(path), "file has only comments: no document", "empty-file")
    builder = _Builder(path)
    data = builder.build(node, (), 0, via_alias=False)
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a scalar ({data!r:.40})"
        raise YamlError(
            builder.at(node),
            f"the top level must be a mapping of keys, found {kind}",
            "not-a-mapping",
        )
    builder.positions.setdefault((), (node.start_mark.line + 1, node.start_mark.column + 1))
    return YamlDocument(path, data, builder.positions)


def _decode(raw: bytes, path: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlError(
            Location(path, line, column),
            f"not valid UTF-8: byte 0x{raw[exc.start]:02x} cannot be decoded",
            "not-utf8",
        ) from None
    return text.removeprefix("\ufeff")


def _syntax_error(exc: yaml.MarkedYAMLError, path: str) -> YamlError:
    mark = exc.problem_mark or exc.context_mark
    location = Location(path, mark.line + 1, mark.column + 1) if mark else Location(path)
    parts = [p for p in (exc.context, exc.problem) if p]
    message = "YAML syntax error: " + (", ".join(parts) if parts else str(exc))
    return YamlError(location, message, "yaml-syntax")


class _Builder:
    """Builds plain values from composed nodes, recording positions and enforcing limits."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.positions: dict[YamlPath, tuple[int, int]] = {}
        self.seen: set[int] = set()
        self.alias_nodes = 0

    def at(self, node: Node) -> Location:
        return Location(self.path, node.start_mark.line + 1, node.start_mark.column + 1)

    def build(self, node: Node, path: YamlPath, depth: int, *, via_alias: bool) -> Any:
        if depth > MAX_DEPTH:
            raise YamlError(self.at(node), f"nesting is deeper than {MAX_DEPTH} levels", "too-deep")
        if id(node) in self.seen:
            via_alias = True
        else:
            self.seen.add(id(node))
        if via_alias:
            self.alias_nodes += 1
            if self.alias_nodes > MAX_ALIAS_NODES:
                raise YamlError(
                    self.at(node),
                    f"aliases expand to more than {MAX_ALIAS_NODES} nodes (an alias bomb?)",
                    "alias-bomb",
                )
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ:
                raise self.bad_tag(node)
            items = []
            for index, item in enumerate(node.value):
                self.positions[(*path, index)] = (
                    item.start_mark.line + 1,
                    item.start_mark.column + 1,
                )
                items.append(self.build(item, (*path, index), depth + 1, via_alias=via_alias))
            return items
        if isinstance(node, MappingNode):
            return self.mapping(node, path, depth, via_alias=via_alias)
        raise self.bad_tag(node)

    def mapping(self, node: MappingNode, path: YamlPath, depth: int, *, via_alias: bool) -> Any:
        if node.tag != _MAP:
            raise self.bad_tag(node)
        result: dict[str, Any] = {}
        first_seen: dict[str, int] = {}
        merged: list[tuple[Node, Any]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged.append(
                    (key_node, self.build(value_node, path, depth + 1, via_alias=via_alias))
                )
                continue
            if not isinstance(key_node, ScalarNode):
                raise YamlError(self.at(key_node), "a mapping key must be a plain value", "bad-key")
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in first_seen:
                raise YamlError(
                    self.at(key_node),
                    f"duplicate key '{key}' (first defined on line {first_seen[key]})",
                    "duplicate-key",
                )
            first_seen[key] = line
            self.positions[(*path, key)] = (line, key_node.start_mark.column + 1)
            result[key] = self.build(value_node, (*path, key), depth + 1, via_alias=via_alias)
        for key_node, value in merged:
            sources = value if isinstance(value, list) else [value]
            for source in sources:
                if not isinstance(source, dict):
                    raise YamlError(self.at(key_node), "'<<' must merge a mapping", "bad-merge")
                for key, item in source.items():
                    if key not in result:
                        result[key] = item
                        self.positions[(*path, key)] = (
                            key_node.start_mark.line + 1,
                            key_node.start_mark.column + 1,
                        )
        return result

    def scalar(self, node: ScalarNode) -> Any:
        if node.tag in _AS_TEXT:
            return node.value
        if node.tag in _CONSTRUCTED:
            return _scalars.yaml_constructors[node.tag](_scalars, node)
        raise self.bad_tag(node)

    def bad_tag(self, node: Node) -> YamlError:
        tag = node.tag.replace(_TAG, "!!")
        return YamlError(
            self.at(node),
            f"tag {tag} is not allowed: only plain YAML values are read",
            "unsafe-tag",
        )
