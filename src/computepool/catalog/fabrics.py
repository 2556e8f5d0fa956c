"""Read ``data/fabrics.yaml``: each accelerator's interconnect class, scale-up domain and the
largest cluster built with it (the planner's "largest job" rule, docs/planner.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from computepool.catalog.errors import CatalogFileError, Problem, problems_from_validation
from computepool.catalog.files import as_ref, label, read_yaml_mapping


@dataclass(frozen=True)
class Fabric:
    accelerator: str
    interconnect: str
    scale_up_cards: int
    scale_out_cards: int
    source: str


class _FabricRow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    accelerator: str = Field(min_length=1, max_length=64)
    interconnect: str = Field(min_length=1, max_length=200)
    scale_up_cards: Annotated[int, Field(ge=1, le=100_000)]
    scale_out_cards: Annotated[int, Field(ge=0, le=10_000_000)]
    source: str = Field(min_length=1)


class _FabricsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    fabrics: list[_FabricRow]


def load_fabrics(path: str | Path | None = None) -> dict[str, Fabric]:
    """Fabric facts by accelerator name, from the shipped catalog or the YAML file at ``path``."""
    ref = as_ref(path, "fabrics.yaml")
    doc = read_yaml_mapping(ref)
    try:
        parsed = _FabricsFile.model_validate(doc)
    except ValidationError as exc:
        raise CatalogFileError(label(ref), problems_from_validation(exc)) from exc
    out: dict[str, Fabric] = {}
    problems = []
    for i, r in enumerate(parsed.fabrics):
        if r.accelerator in out:
            problems.append(
                Problem(f"fabrics[{i}].accelerator", f"duplicate accelerator {r.accelerator!r}")
            )
        if r.scale_out_cards and r.scale_out_cards < r.scale_up_cards:
            problems.append(
                Problem(f"fabrics[{i}].scale_out_cards", "is smaller than scale_up_cards")
            )
        out[r.accelerator] = Fabric(
            r.accelerator, r.interconnect, r.scale_up_cards, r.scale_out_cards, r.source
        )
    if problems:
        raise CatalogFileError(label(ref), problems)
    return out
