"""Where the shipped data files live, and reading a data file with a readable error."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from computepool.catalog.errors import CatalogFileError, Problem, parse_yaml, require_mapping


def data_dir() -> Traversable:
    return resources.files("computepool.catalog") / "data"


def shipped(*parts: str) -> Traversable:
    """A shipped data file, e.g. ``shipped("pools", "openb.yaml")``."""
    ref = data_dir()
    for part in parts:
        ref = ref / part
    return ref


def label(ref: Traversable | Path) -> str:
    """How a file is named in messages: shipped files relative to the package, others as given."""
    text = str(ref)
    marker = "computepool/catalog/data/"
    if marker in text.replace("\\", "/"):
        return "catalog/data/" + text.replace("\\", "/").split(marker, 1)[1]
    return text


def read_text(ref: Traversable | Path, error: type[CatalogFileError] = CatalogFileError) -> str:
    try:
        return ref.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise error(label(ref), [Problem("", "file not found")]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise error(label(ref), [Problem("", f"cannot read: {exc}")]) from exc


def read_yaml_mapping(
    ref: Traversable | Path, error: type[CatalogFileError] = CatalogFileError
) -> dict[str, Any]:
    text = read_text(ref, error)
    return require_mapping(parse_yaml(text, label(ref), error), label(ref), error)


def as_ref(path: str | Path | None, *default: str) -> Traversable | Path:
    return shipped(*default) if path is None else Path(path)
