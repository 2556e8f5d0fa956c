"""Readable errors for catalog and pool files: every problem names the file, the field and the reason."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a data file. ``field`` is a path like ``node_groups[2].per_node``."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


class CatalogFileError(ValueError):
    """A catalog data file (accelerators, regions, network, currency) is unreadable or invalid."""

    kind = "catalog file"

    def __init__(self, file: str, problems: Sequence[Problem]) -> None:
        self.file = str(file)
        self.problems = tuple(problems)
        super().__init__(self._message())

    def _message(self) -> str:
        n = len(self.problems)
        head = f"{self.kind} {self.file}: {n} problem{'s' if n != 1 else ''}"
        return "\n".join([head, *(f"  - {self.file}: {p}" for p in self.problems)])


def field_path(loc: Iterable[Any]) -> str:
    """``('node_groups', 2, 'per_node')`` -> ``node_groups[2].per_node``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def problems_from_validation(exc: ValidationError, prefix: str = "") -> list[Problem]:
    """Turn pydantic's errors into ``Problem``s with dotted field paths and the offending value."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if not is_union_tag(p)]
        path = field_path(loc)
        if prefix:
            path = f"{prefix}.{path}" if path and not path.startswith("[") else prefix + path
        reason = err["msg"]
        if err["type"] not in ("missing", "extra_forbidden") and "input" in err:
            reason += f" (got {err['input']!r})"
        if err["type"] == "extra_forbidden":
            reason = "unknown field"
        problems.append(Problem(path, reason))
    return problems


_UNION_TAG = re.compile(
    r"^(str|int|float|bool|none|date|datetime|list\[.*\]|tuple\[.*\]|dict\[.*\]|function-.*)$"
)


def is_union_tag(part: Any) -> bool:
    # For a union, pydantic puts the member's type name into loc ('str', 'list[str]'); drop it.
    return isinstance(part, str) and bool(_UNION_TAG.match(part))


def parse_yaml(text: str, file: str, error: type[CatalogFileError]) -> Any:
    """``yaml.safe_load`` whose syntax errors become ``error`` with line and column."""
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise error(file, [Problem("", f"not valid YAML at {where}: {exc.problem}")]) from exc
    except yaml.YAMLError as exc:
        raise error(file, [Problem("", f"not valid YAML: {exc}")]) from exc


def require_mapping(doc: Any, file: str, error: type[CatalogFileError]) -> dict[str, Any]:
    if not isinstance(doc, dict):
        got = "an empty file" if doc is None else f"a {type(doc).__name__}"
        raise error(file, [Problem("", f"top level must be a mapping of fields, got {got}")])
    return doc
