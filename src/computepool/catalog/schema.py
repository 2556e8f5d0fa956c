"""Pydantic schemas of the catalog and pool files (the boundary; the model layer stays plain data).

Prices may be written as a number (USD) or as ``"AMOUNT CUR"``; validators convert them with the
exchange rates passed in the validation context (``context={"fx": {...}}``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from computepool.model.accelerator import STACKS

NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
EXPORT_STATUSES = ("", "available", "license_required", "banned", "china_special", "domestic")
_MONEY = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*([A-Za-z]{3})\s*$")

Name = Annotated[str, Field(pattern=NAME)]
NonNeg = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]


def to_usd(value: Any, info: ValidationInfo) -> float | None:
    """``6.88`` -> 6.88; ``"0.38 CNY"`` -> 0.38 * fx['CNY']; ``None`` stays ``None``."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        m = _MONEY.match(value)
        if not m:
            raise ValueError(f"{value!r} is not a number or 'AMOUNT CUR' (e.g. '0.38 CNY')")
        fx: dict[str, float] = (info.context or {}).get("fx", {"USD": 1.0})
        cur = m.group(2).upper()
        if cur not in fx:
            raise ValueError(f"unknown currency {cur!r}; known: {', '.join(sorted(fx))}")
        return round(float(m.group(1)) * fx[cur], 6)
    raise ValueError(f"expected a price, got {type(value).__name__}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------------------------ accelerators


class StackRow(_Strict):
    typical_mfu: Annotated[float, Field(gt=0, le=1)]
    source: str = Field(min_length=1)


class ReferenceRow(_Strict):
    name: Name
    stack: str
    bf16_tflops: Positive
    source: str = Field(min_length=1)


class AcceleratorRow(_Strict):
    name: Name
    vendor: str = Field(min_length=1)
    stack: str
    bf16_tflops: Positive
    memory_gib: Positive
    memory_bw_gbs: Positive
    interconnect_gbs: NonNeg
    tdp_w: Positive
    h100_equiv: Positive | None = None
    price_per_hour: NonNeg | None = None
    purchase_usd: NonNeg | None = None
    stack_efficiency: Annotated[float, Field(gt=0, le=1)] | None = None
    export_status: str = ""
    #: What ``tdp_w`` covers: ``chip`` (the card or package alone) or ``system`` (per chip at
    #: system level, host, switches and optics included).
    tdp_scope: Literal["chip", "system"] = "chip"
    #: Basis of ``price_per_hour``: ``cloud_list`` (a public on-demand list price) or
    #: ``derived`` (see AcceleratorType.price_and_basis); null price_per_hour: derived.
    price_basis: Literal["cloud_list", "derived"] | None = None
    #: Basis of ``purchase_usd``: ``card`` (one card/package), ``server_share`` (an 8-card
    #: server price / 8: host share included), ``same_die`` (another row's card price).
    purchase_basis: Literal["card", "server_share", "same_die", "assumption"] | None = None
    source: str = Field(min_length=1)

    @field_validator("price_per_hour", "purchase_usd", mode="before")
    @classmethod
    def _usd(cls, v: Any, info: ValidationInfo) -> float | None:
        return to_usd(v, info)

    @field_validator("stack")
    @classmethod
    def _known_stack(cls, v: str) -> str:
        if v not in STACKS:
            raise ValueError(f"unknown software stack {v!r}; known: {', '.join(STACKS)}")
        return v

    @field_validator("export_status")
    @classmethod
    def _known_status(cls, v: str) -> str:
        if v not in EXPORT_STATUSES:
            raise ValueError(f"must be one of {', '.join(s or '(empty)' for s in EXPORT_STATUSES)}")
        return v


class AcceleratorsFile(_Strict):
    reference: ReferenceRow
    stacks: dict[str, StackRow]
    accelerators: list[dict[str, Any]] = Field(min_length=1)


# ------------------------------------------------------------------------------ regions, network


class RegionRow(_Strict):
    name: Name
    jurisdiction: str = Field(pattern=r"^[A-Z]{2,3}$")
    electricity_usd_per_kwh: NonNeg
    pue: Annotated[float, Field(ge=1.0, le=3.0)]
    carbon_g_per_kwh: NonNeg
    latitude: Annotated[float, Field(ge=-90, le=90)]
    longitude: Annotated[float, Field(ge=-180, le=180)]
    egress_usd_per_gb: NonNeg = 0.0
    source: str = Field(min_length=1)

    @field_validator("electricity_usd_per_kwh", "egress_usd_per_gb", mode="before")
    @classmethod
    def _usd(cls, v: Any, info: ValidationInfo) -> float | None:
        return to_usd(v, info)


class RegionsFile(_Strict):
    regions: list[RegionRow] = Field(min_length=1)


class RttModel(_Strict):
    fiber_km_per_ms: Positive
    route_factor: Annotated[float, Field(ge=1.0)]
    overhead_ms: NonNeg
    same_region_ms: NonNeg
    source: str = Field(min_length=1)


class BandwidthModel(_Strict):
    same_region_gbps: Positive
    same_jurisdiction_gbps: Positive
    cross_jurisdiction_gbps: Positive
    source: str = Field(min_length=1)


class LinkRow(_Strict):
    a: Name
    b: Name
    rtt_ms: Positive | None = None
    bandwidth_gbps: Positive | None = None
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _something(self) -> LinkRow:
        if self.rtt_ms is None and self.bandwidth_gbps is None:
            raise ValueError("a link must give rtt_ms, bandwidth_gbps or both")
        return self


class NetworkFile(_Strict):
    rtt_model: RttModel
    bandwidth: BandwidthModel
    links: list[LinkRow] = []


class CurrencyFile(_Strict):
    usd_per_unit: dict[Annotated[str, Field(pattern=r"^[A-Z]{3}$")], Positive]


# ------------------------------------------------------------------------------ pools


class NodeGroup(_Strict):
    prefix: Name
    region: str
    accelerator: str
    per_node: Annotated[int, Field(ge=1)]
    nodes: Annotated[int, Field(ge=0)]
    #: One island name, a template with ``{i}`` (island index), or a list of island names.
    island: str | list[str] = ""
    #: Nodes per island when ``island`` is a template or a list.
    islands_of: Annotated[int, Field(ge=1)] | None = None
    cpu_milli: Annotated[int, Field(ge=0)] = 0
    memory_mib: Annotated[int, Field(ge=0)] = 0

    @field_validator("island")
    @classmethod
    def _island_template(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, str) and "{" in v:
            try:
                v.format(i=0)
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"bad island template {v!r}: only {{i}} may be used") from exc
        if isinstance(v, list) and not v:
            raise ValueError("island list must not be empty")
        return v


class NodesCsv(_Strict):
    #: CSV file, relative to the pool file. Columns: sn,cpu_milli,memory_mib,gpu,model and
    #: optionally region, island.
    path: str = Field(min_length=1)
    #: Region of rows without a region column (default: the pool's only region).
    region: str | None = None
    island: str = ""
    #: CSV model code -> catalog accelerator name, for codes that differ from catalog names.
    accelerator_map: dict[str, str] = {}


class PoolFile(_Strict):
    name: Name
    description: str = ""
    #: Region names, or inline region rows (mappings) that add to or replace catalog regions.
    regions: list[Any] | None = None
    #: Inline accelerator rows (same schema as accelerators.yaml, ``like`` allowed).
    accelerators: list[dict[str, Any]] = []
    node_groups: list[NodeGroup] = []
    nodes_csv: NodesCsv | None = None

    @field_validator("nodes_csv", mode="before")
    @classmethod
    def _csv_shorthand(cls, v: Any) -> Any:
        return {"path": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _has_nodes(self) -> PoolFile:
        if not self.node_groups and self.nodes_csv is None:
            raise ValueError("a pool needs node_groups, nodes_csv or both")
        return self
