"""Where each value of a YAML file sits, so an error can name its line.

``load`` parses a text once and keeps the composed node tree beside the data; ``position``
walks a field path (``('node_groups', 2, 'per_node')`` or ``"node_groups[2].per_node"``) down
that tree to the line and column of the deepest key or item it reaches. A syntax error becomes a
``YamlSyntaxError`` that names the file (never ``<unicode string>``), the line and the column.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PathPart = str | int


@dataclass(frozen=True, slots=True)
class Position:
    """1-based line and column (``None``: the column is not known)."""

    line: int
    column: int | None = None

    def __str__(self) -> str:
        return f"{self.line}" if self.column is None else f"{self.line}:{self.column}"


class YamlSyntaxError(ValueError):
    """A YAML text that does not parse: ``file:line:column: not valid YAML: reason``."""

    def __init__(self, file: str, reason: str, at: Position | None = None) -> None:
        self.file, self.reason, self.at = str(file), reason, at
        where = self.file if at is None else f"{self.file}:{at}"
        super().__init__(f"{where}: not valid YAML: {reason}")

    @property
    def line(self) -> int | None:
        return None if self.at is None else self.at.line


@dataclass(frozen=True)
class YamlDoc:
    """A parsed YAML document: the data and the node tree it was built from."""

    data: Any
    root: yaml.Node | None
    file: str

    def position(self, path: str | Sequence[PathPart]) -> Position | None:
        parts = split_path(path) if isinstance(path, str) else list(path)
        return node_position(self.root, parts)

    def line(self, path: str | Sequence[PathPart]) -> int | None:
        at = self.position(path)
        return None if at is None else at.line


def _mark(mark: yaml.Mark) -> Position:
    return Position(mark.line + 1, mark.column + 1)


def load(text: str, file: str) -> YamlDoc:
    """Parse ``text`` (safe types only) keeping the node tree; errors name ``file`` and line."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = None if root is None else loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = exc.problem or exc.context or "cannot parse"
        if exc.context and exc.context_mark is not None and exc.problem_mark is not None:
            reason += f" ({exc.context} at {_mark(exc.context_mark)})"
        raise YamlSyntaxError(file, reason, None if mark is None else _mark(mark)) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(file, str(exc)) from None
    finally:
        loader.dispose()
    return YamlDoc(data, root, file)


def read(path: str | Path) -> YamlDoc:
    """``load`` of a file's text (UTF-8); ``OSError`` when it cannot be read."""
    p = Path(path)
    return load(p.read_text(encoding="utf-8"), str(p))


_PART = re.compile(r"([^.\[\]]+)|\[(\d*)\]")


def split_path(field: str) -> list[PathPart]:
    """``"node_groups[2].per_node"`` -> ``['node_groups', 2, 'per_node']`` (``[]`` is skipped)."""
    parts: list[PathPart] = []
    for name, index in _PART.findall(field.strip()):
        if name:
            parts.append(name)
        elif index:
            parts.append(int(index))
    return parts


def _child(node: yaml.Node, key: PathPart) -> tuple[yaml.Node, yaml.Node] | None:
    """(the node that names ``key``, the node of its value) under ``node``, or None."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == str(key):
                return k, v
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
        return node.value[key], node.value[key]
    return None


def node_position(root: yaml.Node | None, path: Iterable[PathPart]) -> Position | None:
    """Position of the deepest key or item along ``path`` (the document start for ``[]``)."""
    if root is None:
        return None
    node, at = root, _mark(root.start_mark)
    for key in path:
        hit = _child(node, key)
        if hit is None:
            break
        at, node = _mark(hit[0].start_mark), hit[1]
    return at
