"""Reading YAML safely and fast, with the line and column of every node on demand.

PyYAML alone is not enough for a CI gate: it keeps the last of two duplicate keys, it
expands alias bombs, and its values forget where they came from. Here libyaml's parser
(through PyYAML) yields events, and our own builder turns them into plain values: it
refuses duplicate keys, non-standard tags, recursive aliases, deep nesting and runaway
alias expansion. Building straight from events skips PyYAML's node graph and its
resolver, which is most of its cost; positions are recorded only when a finding needs
one, by reading the file again (most files have none).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml import events
from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from reconciler.findings import Location
from reconciler.inert import excerpt

MAX_FILE_BYTES = 4 * 1024 * 1024
"""Larger files are refused unread: a map repo file is a few kilobytes."""
MAX_ALIAS_NODES = 100_000
"""How many nodes aliases may expand to in one file before it is called an alias bomb."""
MAX_DEPTH = 64
"""Deepest nesting accepted (a map is about 8 levels deep)."""

_TAG = "tag:yaml.org,2002:"
_MAP, _SEQ, _STR = _TAG + "map", _TAG + "seq", _TAG + "str"
_COLLECTION_TAGS = {None, "!"}
_SCALAR_TAGS = {_TAG + "int", _TAG + "float", _TAG + "bool", _TAG + "null"}
_TEXT_TAGS = {_STR, _TAG + "timestamp", _TAG + "value", _TAG + "merge"}

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_constructor = SafeConstructor()
_implicit: dict[Any, list[tuple[str, Any]]] = Resolver.yaml_implicit_resolvers
_plain_cache: dict[str, Any] = {}
_MISS = object()
_PLAIN_CACHE_MAX = 200_000

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
    """A parsed file: its data, and where each key or item sits in the source.

    ``marks`` maps ``id(container)`` of every mapping and list in ``data`` to the packed
    positions of its keys or items, in order (see :func:`_pack`); ``data`` keeps the
    containers alive, so their ids stay theirs.
    """

    path: str
    data: dict[str, Any]
    marks: dict[int, list[int]] = field(repr=False)
    root_mark: int = field(default=0, repr=False)
    _key_positions: dict[int, dict[Any, int]] = field(default_factory=dict, repr=False)
    """Per mapping located in, each key's position: a lookup, not a scan per finding."""

    @classmethod
    def from_parts(
        cls, path: str, data: dict[str, Any], marked: list[tuple[Any, list[int]]], root_mark: int
    ) -> YamlDocument:
        """Rebuild the id-keyed marks (also after the parts crossed a process boundary)."""
        return cls(path, data, {id(container): marks for container, marks in marked}, root_mark)

    def locate(self, path: Sequence[str | int] = ()) -> Location:
        """The position of the deepest node of ``path`` that exists in the file."""
        packed = self.root_mark
        node: Any = self.data
        for part in path:
            marks = self.marks.get(id(node))
            if isinstance(node, dict) and part in node:
                positions = self._key_positions.get(id(node))
                if positions is None:
                    positions = self._key_positions[id(node)] = {k: i for i, k in enumerate(node)}
                index = positions[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                index = part
            else:
                break
            if marks is None or index >= len(marks):
                break
            packed, node = marks[index], node[part]
        return _unpack(self.path, packed)

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


_COLUMN_BITS = 23  # files are at most 4 MiB, so a column fits


def _pack(mark: Any) -> int:
    return int(((mark.line + 1) << _COLUMN_BITS) | (mark.column + 1))


def _unpack(path: str, packed: int) -> Location:
    if not packed:
        return Location(path)
    return Location(path, packed >> _COLUMN_BITS, packed & ((1 << _COLUMN_BITS) - 1))


def _child(node: Any, part: str | int) -> tuple[bool, Any]:
    if isinstance(node, dict) and part in node:
        return True, node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return True, node[part]
    return False, None


@contextmanager
def bulk_loading() -> Iterator[None]:
    """Pause the cyclic garbage collector while many acyclic values are built.

    Parsed YAML makes no reference cycles, yet each collection rescans every object
    built so far: on a large repo that is most of the time spent.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_yaml(raw: bytes, path: str) -> YamlDocument:
    """Parse one file's bytes; raise :class:`YamlError` with a location for any problem."""
    return YamlDocument.from_parts(path, *parse_yaml_parts(raw, path))


DocumentParts = tuple[dict[str, Any], list[tuple[Any, list[int]]], int]
"""A parsed file in a form that pickles: data, its containers' marks, the root's mark."""


def parse_yaml_parts(raw: bytes, path: str) -> DocumentParts:
    """:func:`parse_yaml`, returning the parts of a :class:`YamlDocument`."""
    if len(raw) > MAX_FILE_BYTES:
        raise YamlError(
            Location(path),
            f"file is {len(raw) / 1048576:.1f} MiB, over the {MAX_FILE_BYTES // 1048576} MiB limit",
            "file-too-large",
        )
    text = _decode(raw, path)
    if not text.strip():
        raise YamlError(Location(path), "file is empty", "empty-file")
    builder = _Builder(path)
    data = builder.build(text)
    return data, builder.marked, builder.root_mark


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
    if exc.problem and "exceeded maximum nesting depth" in exc.problem:
        # PyYAML >= 6.0.4's own limit, met while its scanner looks ahead in flow collections
        # (``[[[[…``) before our builder sees MAX_DEPTH levels.
        return YamlError(location, f"nesting is deeper than {MAX_DEPTH} levels", "too-deep")
    parts = [p for p in (exc.context, exc.problem) if p]
    message = "YAML syntax error: " + (", ".join(parts) if parts else str(exc))
    return YamlError(location, message, "yaml-syntax")


def _kind_name(value: Any) -> str:
    """What a scalar is, without quoting it: the file may not be a map at all (a token)."""
    if isinstance(value, bool):
        return "true/false value"
    if isinstance(value, int | float):
        return "number"
    return "null value" if value is None else "string"


def _plain(value: str) -> Any:
    """A plain (unquoted) scalar as YAML 1.1 reads it: int, float, bool, null or text."""
    cached = _plain_cache.get(value, _plain_cache)
    if cached is not _plain_cache:
        return cached
    result: Any = value
    for tag, regexp in _implicit.get(value[:1] if value else "", []) + _implicit.get(None, []):
        if regexp.match(value):
            if tag in _SCALAR_TAGS:
                result = _constructor.yaml_constructors[tag](_constructor, ScalarNode(tag, value))
            break
    if len(_plain_cache) >= _PLAIN_CACHE_MAX:
        _plain_cache.clear()
    _plain_cache[value] = result
    return result


class _Frame:
    """A mapping or sequence being built, and the packed positions of its keys or items."""

    __slots__ = ("anchor", "key", "marks", "merges", "size_before", "value")

    def __init__(self, value: dict[str, Any] | list[Any], anchor: str | None, size: int) -> None:
        self.value = value
        self.anchor = anchor
        self.size_before = size
        self.key: str | None = None
        self.marks: list[int] = []
        self.merges: list[tuple[Any, Any]] = []


class _MergeKey(str):
    """The ``<<`` merge key, told apart from a quoted ``"<<"`` key."""

    __slots__ = ()


class _Builder:
    """Builds plain values from parser events, enforcing the limits, recording positions."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.marked: list[tuple[Any, list[int]]] = []
        """Every mapping and list built, with the packed positions of its keys or items."""
        self.root_mark = 0
        self.root_written = False
        """Whether the document holds anything, even a null (``---`` alone holds nothing)."""

    def error(self, mark: Any, message: str, code: str) -> YamlError:
        location = _unpack(self.path, _pack(mark)) if mark else Location(self.path)
        return YamlError(location, message, code)

    def build(self, text: str) -> dict[str, Any]:
        loader = _Loader(text)
        try:
            root = self._build(loader)
        except yaml.MarkedYAMLError as exc:
            raise _syntax_error(exc, self.path) from None
        except yaml.YAMLError as exc:
            raise YamlError(Location(self.path), f"YAML error: {exc}", "yaml-syntax") from None
        finally:
            loader.dispose()
        if root is None and not self.root_written:
            raise YamlError(Location(self.path), "file has no content: no document", "empty-file")
        if not isinstance(root, dict):
            found = "a list" if isinstance(root, list) else f"a single {_kind_name(root)}"
            raise YamlError(
                _unpack(self.path, self.root_mark),
                f"the top level must be a mapping of keys, found {found}",
                "not-a-mapping",
            )
        return root

    def _build(self, loader: Any) -> Any:
        get_event = loader.get_event
        scalar_event, alias_event = events.ScalarEvent, events.AliasEvent
        mapping_start, sequence_start = events.MappingStartEvent, events.SequenceStartEvent
        mapping_end, sequence_end = events.MappingEndEvent, events.SequenceEndEvent
        plain_cache, miss = _plain_cache, _MISS
        stack: list[_Frame] = []
        top: _Frame | None = None
        in_map = False  # top is a mapping
        anchors: dict[str, tuple[Any, int]] = {}
        size = expanded = documents = 0  # size counts nodes built, alias expansions included
        root: Any = None
        while True:
            event = get_event()
            kind = type(event)
            value: Any
            if kind is scalar_event:
                size += 1
                if in_map and top.key is None:  # type: ignore[union-attr]
                    key = event.value
                    if event.tag is not None or key in top.value or key == "<<":  # type: ignore[union-attr]
                        self._key(top, event)  # type: ignore[arg-type]  # the rare cases
                    else:
                        mark = event.start_mark
                        top.key = key  # type: ignore[union-attr]
                        top.marks.append(((mark.line + 1) << _COLUMN_BITS) | (mark.column + 1))  # type: ignore[union-attr]
                    continue
                if event.tag is None and event.implicit[0]:
                    value = plain_cache.get(event.value, miss)
                    if value is miss:
                        value = _plain(event.value)
                else:
                    value = self._scalar(event)
                if event.anchor:
                    anchors[event.anchor] = (value, 1)
            elif kind is mapping_start or kind is sequence_start:
                size += 1
                mapping = kind is mapping_start
                if event.tag not in _COLLECTION_TAGS and event.tag != (_MAP if mapping else _SEQ):
                    raise self._bad_tag(event)
                if len(stack) >= MAX_DEPTH:
                    raise self.error(
                        event.start_mark, f"nesting is deeper than {MAX_DEPTH} levels", "too-deep"
                    )
                if top is None:
                    self.root_mark = _pack(event.start_mark)
                elif in_map:
                    if top.key is None:
                        raise self.error(
                            event.start_mark, "a mapping key must be a plain value", "bad-key"
                        )
                else:
                    top.marks.append(_pack(event.start_mark))
                top = _Frame({} if mapping else [], event.anchor, size)
                in_map = mapping
                stack.append(top)
                continue
            elif kind is mapping_end or kind is sequence_end:
                frame = stack.pop()
                value = frame.value
                if frame.merges:
                    self._merge(frame)
                self.marked.append((value, frame.marks))
                if frame.anchor:
                    anchors[frame.anchor] = (value, size - frame.size_before + 1)
                top = stack[-1] if stack else None
                in_map = top is not None and type(top.value) is dict
            elif kind is alias_event:
                if in_map and top.key is None:  # type: ignore[union-attr]
                    raise self.error(
                        event.start_mark, "a mapping key must be a plain value", "bad-key"
                    )
                target = anchors.get(event.anchor)
                if target is None:
                    raise self.error(
                        event.start_mark,
                        f"alias *{event.anchor} refers to no complete anchor "
                        "(undefined, or recursive)",
                        "bad-alias",
                    )
                value, count = target
                expanded += count
                size += count
                if expanded > MAX_ALIAS_NODES:
                    raise self.error(
                        event.start_mark,
                        f"aliases expand to more than {MAX_ALIAS_NODES} nodes (an alias bomb?)",
                        "alias-bomb",
                    )
            elif kind is events.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise self.error(
                        event.start_mark,
                        "expected a single document, but found another",
                        "yaml-syntax",
                    )
                continue
            elif kind is events.StreamEndEvent:
                return root
            else:  # stream start, document end
                continue
            # a finished value: attach it to its parent
            if top is None:
                root = value
                self.root_written = kind is not scalar_event or event.value != ""
                if not self.root_mark:
                    self.root_mark = _pack(event.start_mark)
            elif in_map:
                key = top.key
                if type(key) is _MergeKey:
                    top.merges.append((value, event.start_mark))
                else:
                    top.value[key] = value  # type: ignore[index, call-overload]
                top.key = None
            else:
                if kind is scalar_event or kind is alias_event:
                    top.marks.append(_pack(event.start_mark))
                top.value.append(value)  # type: ignore[union-attr]

    def _scalar(self, event: Any) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            return _plain(event.value) if event.implicit[0] else event.value
        if tag in _SCALAR_TAGS:
            return _constructor.yaml_constructors[tag](_constructor, ScalarNode(tag, event.value))
        if tag in _TEXT_TAGS:
            return event.value
        raise self._bad_tag(event)

    def _key(self, frame: _Frame, event: Any) -> None:
        if event.tag not in (None, "!", _STR):
            raise self._bad_tag(event)
        key: str = event.value
        if key == "<<" and event.implicit[0]:
            frame.key = _MergeKey(key)
            return
        target = frame.value
        assert isinstance(target, dict)
        if key in target:
            first = frame.marks[list(target).index(key)] >> _COLUMN_BITS
            raise self.error(
                event.start_mark,
                f"duplicate key {excerpt(key)} (first defined on line {first})",
                "duplicate-key",
            )
        frame.key = key
        frame.marks.append(_pack(event.start_mark))

    def _merge(self, frame: _Frame) -> None:
        target = frame.value
        assert isinstance(target, dict)
        for value, mark in frame.merges:
            for source in value if isinstance(value, list) else [value]:
                if not isinstance(source, dict):
                    raise self.error(
                        mark, "'<<' must merge a mapping or a list of mappings", "bad-merge"
                    )
                for key, item in source.items():
                    if key not in target:
                        target[key] = item
                        frame.marks.append(_pack(mark))

    def _bad_tag(self, event: Any) -> YamlError:
        tag = str(event.tag).replace(_TAG, "!!")
        return self.error(
            event.start_mark,
            f"tag {tag} is not allowed: only plain YAML values are read",
            "unsafe-tag",
        )
