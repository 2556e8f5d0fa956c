"""Pydantic schema of a planner scenario file (the boundary; ``scenario.py`` resolves it).

Money may be a number (USD) or ``"AMOUNT CUR"`` (converted with the catalog's currency table).
A per-year value may be one value for every year or a mapping ``{year: value}``; years missing
from the mapping take the value of the latest earlier year given (the earliest given value
before that). See docs/planner.md for every field.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from computepool.catalog.schema import NAME, to_usd
from computepool.model.job import JobKind

Name = Annotated[str, Field(pattern=NAME)]
NonNeg = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]
Share = Annotated[float, Field(gt=0, le=1)]
Year = Annotated[int, Field(ge=1900, le=2200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _money(v: Any, info: ValidationInfo) -> Any:
    if isinstance(v, dict):
        return {k: to_usd(x, info) for k, x in v.items()}
    return to_usd(v, info)


class Window(_Strict):
    """Years (inclusive) in which a chip may be bought in a jurisdiction; open ends allowed."""

    from_year: Year | None = None
    until_year: Year | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if (
            self.from_year is not None
            and self.until_year is not None
            and self.until_year < self.from_year
        ):
            raise ValueError(f"until_year {self.until_year} is before from_year {self.from_year}")
        return self


class ChipIn(_Strict):
    """A chip option: a catalog accelerator plus what the scenario says about buying it."""

    name: Name
    #: Catalog accelerator this option is (default: ``name``).
    accelerator: str | None = None
    vendor: str | None = None
    bf16_tflops: Positive | None = None
    h100_equiv: Positive | None = None
    stack_efficiency: Share | None = None
    #: Efficiency per workload kind (overrides ``stack_efficiency`` for that kind).
    efficiency: dict[JobKind, Share] = {}
    tdp_w: Positive | None = None
    #: IT power per card including its share of host, network and storage (default TDP x
    #: ``defaults.it_overhead``).
    it_power_w: Positive | None = None
    per_node: Annotated[int, Field(ge=1)] = 8
    #: Price of one card (USD or "AMOUNT CUR"), one value or per year; default: catalog
    #: ``purchase_usd``. All-in capex per card = price x ``defaults.system_overhead``.
    price_usd: NonNeg | dict[Year, NonNeg] | None = None
    #: Cards that can be bought per year (all sites together); null = unlimited.
    supply: NonNeg | dict[Year, NonNeg | None] | None = None
    #: Jurisdiction -> true / false / {from_year, until_year}. Default: banned in CN when the
    #: catalog's export_status is ``banned``, else available everywhere.
    availability: dict[str, bool | Window] = {}
    #: Smallest purchase of this chip at one site in one year, cards (rounded up to whole
    #: nodes); default ``defaults.min_order_cards``. A year's buy is 0 or at least this.
    min_order: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    #: One-off cost of bringing this chip family into a site (qualification, integration,
    #: spares, vendor support set-up), charged once per site that buys it; default
    #: ``defaults.chip_site_fixed_usd``.
    fixed_cost_usd: NonNeg | None = None
    #: Fabric facts (default: catalog fabrics.yaml): interconnect class, cards in one scale-up
    #: domain, and the largest cluster built with this chip (cards in one training fabric).
    interconnect: Annotated[str, Field(max_length=200)] | None = None
    scale_up_cards: Annotated[int, Field(ge=1, le=100_000)] | None = None
    scale_out_cards: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    #: Share of the all-in capex recovered by selling the cards when the fleet retires (after
    #: the horizon and ``defaults.tail_years``); default ``defaults.resale_fraction``.
    resale_fraction: Annotated[float, Field(ge=0, lt=1)] | None = None
    source: str = ""

    _price = field_validator("price_usd", "fixed_cost_usd", mode="before")(_money)


class ExistingIn(_Strict):
    chip: str
    cards: Annotated[int, Field(ge=0)]
    source: str = ""


class SiteIn(_Strict):
    name: Name
    #: Catalog region (supplies jurisdiction, electricity price, PUE and carbon intensity).
    region: str | None = None
    jurisdiction: str | None = Field(default=None, pattern=r"^[A-Z]{2,3}$")
    #: Facility power cap (IT x PUE), MW.
    power_mw: Positive
    card_cap: Annotated[int, Field(ge=0)] | None = None
    #: One-off cost to open the site, paid in the year construction starts.
    build_cost_usd: NonNeg = 0.0
    #: Years from the start of construction until the site can host cards.
    lead_time_years: Annotated[int, Field(ge=0, le=20)] = 0
    #: Already built: hosts cards from the first year, no build cost.
    built: bool = False
    electricity_usd_per_kwh: NonNeg | None = None
    pue: Annotated[float, Field(ge=1.0, le=3.0)] | None = None
    carbon_g_per_kwh: NonNeg | None = None
    facility_usd_per_it_mw: NonNeg | None = None
    existing: list[ExistingIn] = []
    source: str = ""

    _usd = field_validator(
        "build_cost_usd", "electricity_usd_per_kwh", "facility_usd_per_it_mw", mode="before"
    )(_money)


class TargetIn(_Strict):
    year: Year
    kind: JobKind = JobKind.TRAIN
    #: Effective H100-equivalents (h100_equiv x efficiency) or effective dense-BF16 EFLOPS.
    h100e: Positive | None = None
    eflops: Positive | None = None
    #: Jurisdictions or site names the compute must sit in (empty: anywhere).
    where: list[str] = []
    #: False: count peak compute, ignoring software-stack efficiency.
    effective: bool = True
    #: The target's largest single job, in peak H100-equivalents (cards x h100_equiv). Cards
    #: count toward this target only in a fabric (one chip at one site) that holds that job:
    #: at least ceil(largest_job_h100e / h100_equiv) cards, within the chip's scale-out limit.
    largest_job_h100e: Positive | None = None
    name: str | None = None
    source: str = ""

    @model_validator(mode="after")
    def _one_unit(self) -> TargetIn:
        if (self.h100e is None) == (self.eflops is None):
            raise ValueError("give exactly one of h100e or eflops")
        return self


class VendorCapIn(_Strict):
    #: No vendor above this share of installed compute (H100-equivalents, peak).
    share: Share
    from_year: Year | None = None
    #: Vendor -> its own cap, replacing ``share`` for that vendor.
    per_vendor: dict[str, Share] = {}


class BudgetIn(_Strict):
    #: Capital spending (cards, facility, site builds) over the horizon, undiscounted.
    total_usd: NonNeg | None = None
    per_year_usd: dict[Year, NonNeg] = {}
    #: Count energy (and carbon price) against the budget too.
    includes_energy: bool = False

    _usd = field_validator("total_usd", "per_year_usd", mode="before")(_money)


class DefaultsIn(_Strict):
    #: All-in capex per card (server, network, storage) / card price.
    system_overhead: Annotated[float, Field(ge=1.0, le=10.0)] = 1.0
    #: IT power per card / card TDP.
    it_overhead: Annotated[float, Field(ge=1.0, le=5.0)] = 1.0
    #: Average fraction of full power drawn over a year.
    load_factor: Share = 1.0
    facility_usd_per_it_mw: NonNeg = 0.0
    carbon_usd_per_t: NonNeg = 0.0
    #: Years after the horizon whose energy the final fleet is charged for (discounted).
    tail_years: Annotated[int, Field(ge=0, le=30)] = 0
    #: Default smallest purchase per chip, site and year, cards (1: one node).
    min_order_cards: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    #: Default one-off cost per (chip family, site) bought at.
    chip_site_fixed_usd: NonNeg = 0.0
    #: Default share of capex recovered by resale when the fleet retires (0: none).
    resale_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.0

    _usd = field_validator(
        "facility_usd_per_it_mw", "carbon_usd_per_t", "chip_site_fixed_usd", mode="before"
    )(_money)


class ScenarioIn(_Strict):
    name: Name
    description: str = ""
    start_year: Year
    horizon_years: Annotated[int, Field(ge=1, le=30)]
    discount_rate: Annotated[float, Field(ge=0, lt=1)] = 0.0
    targets: list[TargetIn] = Field(min_length=1)
    sites: list[SiteIn] = Field(min_length=1)
    chips: list[ChipIn] = Field(min_length=1)
    #: A share (0-1] for every vendor, or {share, from_year, per_vendor}.
    vendor_cap: VendorCapIn | None = None
    budget: BudgetIn | None = None
    defaults: DefaultsIn = DefaultsIn()

    @field_validator("vendor_cap", mode="before")
    @classmethod
    def _bare_share(cls, v: Any) -> Any:
        return {"share": v} if isinstance(v, int | float) and not isinstance(v, bool) else v
