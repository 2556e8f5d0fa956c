"""Read ``data/accelerators.yaml`` (and inline rows of pool files) into ``AcceleratorType`` objects."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from computepool.catalog.errors import CatalogFileError, Problem, problems_from_validation
from computepool.catalog.files import as_ref, label, read_yaml_mapping
from computepool.catalog.schema import AcceleratorRow, AcceleratorsFile, CurrencyFile
from computepool.model.accelerator import AcceleratorType


@dataclass(frozen=True)
class AcceleratorCatalog:
    """The accelerator types plus what is needed to read more rows like them (pool overrides)."""

    types: Mapping[str, AcceleratorType]
    #: Raw rows (``like`` resolved), so a new row can say ``like: NAME`` and re-derive factors.
    raw: Mapping[str, Mapping[str, Any]]
    reference_tflops: float
    #: stack -> stack_efficiency (typical MFU relative to the reference stack).
    stack_efficiency: Mapping[str, float]
    fx: Mapping[str, float]


def load_fx(path: str | Path | None = None) -> dict[str, float]:
    """Exchange rates, USD per unit of each currency (``data/currency.yaml``)."""
    ref = as_ref(path, "currency.yaml")
    doc = read_yaml_mapping(ref)
    try:
        return dict(CurrencyFile.model_validate(doc).usd_per_unit)
    except ValidationError as exc:
        raise CatalogFileError(label(ref), problems_from_validation(exc)) from exc


def resolve_likes(
    rows: Iterable[tuple[str, Any]], base: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, dict[str, Any]], dict[str, str], list[Problem]]:
    """Expand ``like: OTHER`` in order. Returns (rows by name, field path by name, problems).

    ``rows`` are (field path, raw row); ``OTHER`` may be an earlier row or a row of ``base``.
    """
    out: dict[str, dict[str, Any]] = {}
    where: dict[str, str] = {}
    problems: list[Problem] = []
    for path, row in rows:
        if not isinstance(row, Mapping):
            problems.append(Problem(path, f"must be a mapping of fields, got {type(row).__name__}"))
            continue
        name = row.get("name")
        if not isinstance(name, str) or not name:
            problems.append(Problem(f"{path}.name", "Field required"))
            continue
        if name in out:
            problems.append(
                Problem(f"{path}.name", f"duplicate accelerator {name!r} (also {where[name]})")
            )
            continue
        merged = dict(row)
        like = merged.pop("like", None)
        if like is not None:
            parent = out.get(like, base.get(like))
            if parent is None:
                known = ", ".join(sorted({*out, *base}))
                problems.append(
                    Problem(f"{path}.like", f"unknown accelerator {like!r}; known: {known}")
                )
                continue
            merged = {**parent, **merged}
        out[name], where[name] = merged, path
    return out, where, problems


def build_types(
    rows: Mapping[str, Mapping[str, Any]],
    where: Mapping[str, str],
    reference_tflops: float,
    stack_efficiency: Mapping[str, float],
    fx: Mapping[str, float],
) -> tuple[dict[str, AcceleratorType], list[Problem]]:
    """Validate resolved rows and derive ``h100_equiv`` and ``stack_efficiency`` where not given."""
    types: dict[str, AcceleratorType] = {}
    problems: list[Problem] = []
    for name, raw in rows.items():
        try:
            row = AcceleratorRow.model_validate(raw, context={"fx": fx})
        except ValidationError as exc:
            problems.extend(problems_from_validation(exc, where[name]))
            continue
        eff = row.stack_efficiency
        if eff is None:
            if row.stack not in stack_efficiency:
                known = ", ".join(sorted(stack_efficiency))
                problems.append(
                    Problem(
                        f"{where[name]}.stack",
                        f"no stack_efficiency for stack {row.stack!r} "
                        f"(stacks table has {known}); set stack_efficiency in the row",
                    )
                )
                continue
            eff = stack_efficiency[row.stack]
        fields = row.model_dump()
        fields["h100_equiv"] = row.h100_equiv or round(row.bf16_tflops / reference_tflops, 4)
        fields["stack_efficiency"] = eff
        types[name] = AcceleratorType(**fields)
    return types, problems


def parse_accelerator_catalog(
    doc: Mapping[str, Any], file: str, fx: Mapping[str, float]
) -> AcceleratorCatalog:
    try:
        parsed = AcceleratorsFile.model_validate(doc)
    except ValidationError as exc:
        raise CatalogFileError(file, problems_from_validation(exc)) from exc
    problems: list[Problem] = []
    ref_mfu = parsed.stacks.get(parsed.reference.stack)
    if ref_mfu is None:
        problems.append(
            Problem("reference.stack", f"stack {parsed.reference.stack!r} is not in stacks")
        )
        raise CatalogFileError(file, problems)
    stack_eff = {s: round(r.typical_mfu / ref_mfu.typical_mfu, 4) for s, r in parsed.stacks.items()}
    rows = ((f"accelerators[{i}]", r) for i, r in enumerate(parsed.accelerators))
    raw, where, more = resolve_likes(rows, {})
    problems += more
    types, more = build_types(raw, where, parsed.reference.bf16_tflops, stack_eff, fx)
    problems += more
    if parsed.reference.name not in types and not problems:
        problems.append(Problem("reference.name", f"{parsed.reference.name!r} has no row"))
    if problems:
        raise CatalogFileError(file, problems)
    return AcceleratorCatalog(types, raw, parsed.reference.bf16_tflops, stack_eff, fx)


def load_accelerator_catalog(
    path: str | Path | None = None, currency_path: str | Path | None = None
) -> AcceleratorCatalog:
    ref = as_ref(path, "accelerators.yaml")
    return parse_accelerator_catalog(read_yaml_mapping(ref), label(ref), load_fx(currency_path))


def load_accelerators(path: str | Path | None = None) -> dict[str, AcceleratorType]:
    """Accelerator types by name, from the shipped catalog or the YAML file at ``path``."""
    return dict(load_accelerator_catalog(path).types)
