"""A planner scenario, resolved against the catalog into plain per-year data.

``load_scenario(path)`` reads the YAML, validates it with ``schema.ScenarioIn`` and fills every
fact the scenario leaves out from the shipped catalog (accelerator specs and prices, region
jurisdiction, electricity price, PUE and carbon intensity). Every problem names the file, the
field and the reason (``ScenarioFileError``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from computepool.catalog.accelerators import load_accelerators, load_fx
from computepool.catalog.errors import CatalogFileError, Problem, problems_from_validation
from computepool.catalog.fabrics import Fabric, load_fabrics
from computepool.catalog.files import read_yaml_mapping
from computepool.catalog.regions import load_regions
from computepool.model.accelerator import AcceleratorType
from computepool.model.job import JobKind
from computepool.model.region import Region
from computepool.plan.schema import ChipIn, ScenarioIn, SiteIn, TargetIn, Window

#: Jurisdiction in which catalog rows with export_status ``banned`` are unavailable by default.
EXPORT_CONTROLLED_IN = "CN"


class ScenarioFileError(CatalogFileError):
    kind = "scenario file"


@dataclass(frozen=True)
class Site:
    name: str
    region: str
    jurisdiction: str
    power_mw: float
    card_cap: int | None
    build_cost_usd: float
    lead_time_years: int
    built: bool
    electricity_usd_per_kwh: float
    pue: float
    carbon_g_per_kwh: float
    facility_usd_per_it_mw: float
    #: Chip option name -> cards installed before the first year.
    existing: Mapping[str, int] = field(default_factory=dict)
    source: str = ""


@dataclass(frozen=True)
class Chip:
    name: str
    accelerator: str
    vendor: str
    bf16_tflops: float
    h100_equiv: float
    efficiency: Mapping[JobKind, float]
    it_power_w: float
    per_node: int
    #: All-in capex per card per year (card price x system overhead), USD.
    capex_usd: tuple[float, ...]
    #: Cards purchasable per year; None = unlimited.
    supply: tuple[float | None, ...]
    #: Jurisdiction -> purchasable in each year.
    available: Mapping[str, tuple[bool, ...]]
    source: str = ""
    #: Smallest purchase per site and year, whole nodes.
    min_order_nodes: int = 1
    #: One-off cost per site that buys this chip, USD.
    fixed_cost_usd: float = 0.0
    interconnect: str = ""
    scale_up_cards: int = 8
    #: Largest cluster built with this chip: cards in one training fabric (0: none known).
    scale_out_cards: int = 0
    fabric_source: str = ""
    #: Share of the all-in capex recovered by selling the cards when the fleet retires.
    resale_fraction: float = 0.0

    @property
    def min_order_cards(self) -> int:
        return self.min_order_nodes * self.per_node

    def job_cards(self, h100e: float) -> int:
        """Cards of this chip one job of ``h100e`` peak H100-equivalents needs."""
        return max(1, math.ceil(h100e / self.h100_equiv - 1e-9))


@dataclass(frozen=True)
class Target:
    name: str
    year: int
    kind: JobKind
    unit: str  # "h100e" or "eflops"
    value: float
    #: Sites whose compute counts.
    sites: frozenset[str]
    effective: bool = True
    source: str = ""
    #: Largest single job, peak H100e; None: any card counts.
    largest_job_h100e: float | None = None

    def coefficient(self, chip: Chip) -> float:
        """Target units per card of ``chip`` allocated to this target's kind."""
        eff = chip.efficiency[self.kind] if self.effective else 1.0
        per_card = chip.h100_equiv if self.unit == "h100e" else chip.bf16_tflops / 1e6
        return per_card * eff


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    years: tuple[int, ...]
    discount_rate: float
    sites: tuple[Site, ...]
    chips: tuple[Chip, ...]
    targets: tuple[Target, ...]
    #: Vendor -> max share of installed H100e (vendors not listed: uncapped).
    vendor_caps: Mapping[str, float] = field(default_factory=dict)
    vendor_cap_from_year: int | None = None
    budget_total_usd: float | None = None
    budget_per_year_usd: tuple[float | None, ...] = ()
    budget_includes_energy: bool = False
    load_factor: float = 1.0
    carbon_usd_per_t: float = 0.0
    tail_years: int = 0
    file: str = ""

    @property
    def kinds(self) -> tuple[JobKind, ...]:
        return tuple(k for k in JobKind if any(t.kind == k for t in self.targets))

    @property
    def vendors(self) -> tuple[str, ...]:
        return tuple(sorted({c.vendor for c in self.chips}))

    def year_index(self, year: int) -> int:
        return self.years.index(year)


# ------------------------------------------------------------------------------ resolution


def per_year(
    value: Any, years: Sequence[int], path: str, problems: list[Problem], default: Any = None
) -> list[Any]:
    """One value, or ``{year: value}`` carried forward (and back before the first key)."""
    if not isinstance(value, Mapping):
        return [default if value is None else value] * len(years)
    bad = sorted(y for y in value if y not in years)
    if bad:
        problems.append(Problem(path, f"year(s) {bad} outside the horizon {years[0]}-{years[-1]}"))
    given = sorted((y, v) for y, v in value.items() if y in years)
    if not given:
        return [default] * len(years)
    out, current = [], given[0][1]
    lookup = dict(given)
    for y in years:
        current = lookup.get(y, current)
        out.append(current)
    return out


def _window_years(rule: bool | Window, years: Sequence[int]) -> tuple[bool, ...]:
    if isinstance(rule, bool):
        return (rule,) * len(years)
    lo = rule.from_year if rule.from_year is not None else years[0]
    hi = rule.until_year if rule.until_year is not None else years[-1]
    return tuple(lo <= y <= hi for y in years)


def resolve_chip(
    i: int,
    row: ChipIn,
    doc: ScenarioIn,
    years: Sequence[int],
    jurisdictions: Sequence[str],
    catalog: Mapping[str, AcceleratorType],
    problems: list[Problem],
    fabrics: Mapping[str, Fabric] | None = None,
) -> Chip | None:
    path = f"chips[{i}]"
    name = row.accelerator or row.name
    base = catalog.get(name)
    if base is None and row.accelerator is not None:
        problems.append(
            Problem(f"{path}.accelerator", f"unknown accelerator {name!r} in the catalog")
        )
        return None

    def pick(fld: str, catalog_value: Any) -> Any:
        v = getattr(row, fld)
        if v is None:
            v = catalog_value
        if v is None:
            problems.append(
                Problem(
                    f"{path}.{fld}",
                    f"required: {name!r} is not in the catalog"
                    if base is None
                    else f"the catalog has no {fld} for {name!r}; give it here",
                )
            )
        return v

    vendor = pick("vendor", base.vendor if base else None)
    tflops = pick("bf16_tflops", base.bf16_tflops if base else None)
    tdp = pick("tdp_w", base.tdp_w if base else None)
    price_field = "price_usd"
    if row.price_usd is None and (base is None or base.purchase_usd is None):
        problems.append(
            Problem(
                f"{path}.{price_field}",
                f"no price: the catalog has no purchase_usd for {name!r}; give price_usd",
            )
        )
        return None
    if vendor is None or tflops is None or tdp is None:
        return None
    h100e = row.h100_equiv or (base.h100_equiv if base else tflops / 989.0)
    stack_eff = row.stack_efficiency or (base.stack_efficiency if base else 1.0)
    eff = {k: row.efficiency.get(k, stack_eff) for k in JobKind}
    price = row.price_usd if row.price_usd is not None else base.purchase_usd  # type: ignore[union-attr]
    prices = per_year(price, years, f"{path}.price_usd", problems)
    supply = per_year(row.supply, years, f"{path}.supply", problems)
    avail: dict[str, tuple[bool, ...]] = {}
    for j in row.availability:
        if j not in jurisdictions:
            problems.append(
                Problem(
                    f"{path}.availability.{j}",
                    f"{j!r} is not the jurisdiction of any site ({', '.join(jurisdictions)})",
                )
            )
    for j in jurisdictions:
        if j in row.availability:
            avail[j] = _window_years(row.availability[j], years)
        else:
            banned = base is not None and base.export_status == "banned"
            avail[j] = (not (banned and j == EXPORT_CONTROLLED_IN),) * len(years)
    system_tdp = row.tdp_w is None and base is not None and base.tdp_scope == "system"
    it_power = row.it_power_w or (tdp if system_tdp else tdp * doc.defaults.it_overhead)
    fab = (fabrics or {}).get(name)
    lot = row.min_order or doc.defaults.min_order_cards
    fixed = row.fixed_cost_usd
    return Chip(
        name=row.name,
        accelerator=name,
        vendor=vendor,
        bf16_tflops=float(tflops),
        h100_equiv=float(h100e),
        efficiency=eff,
        it_power_w=float(it_power),
        per_node=row.per_node,
        capex_usd=tuple(float(p) * doc.defaults.system_overhead for p in prices),
        supply=tuple(None if s is None else float(s) for s in supply),
        available=avail,
        source=row.source or (base.source if base else ""),
        min_order_nodes=max(1, math.ceil(lot / row.per_node)),
        resale_fraction=(
            doc.defaults.resale_fraction if row.resale_fraction is None else row.resale_fraction
        ),
        fixed_cost_usd=float(doc.defaults.chip_site_fixed_usd if fixed is None else fixed),
        interconnect=row.interconnect or (fab.interconnect if fab else "unknown"),
        scale_up_cards=row.scale_up_cards or (fab.scale_up_cards if fab else row.per_node),
        scale_out_cards=(
            row.scale_out_cards
            if row.scale_out_cards is not None
            else (fab.scale_out_cards if fab else 0)
        ),
        fabric_source=(
            "scenario" if row.scale_out_cards is not None else (fab.source if fab else "")
        ),
    )


def resolve_site(
    i: int,
    row: SiteIn,
    doc: ScenarioIn,
    regions: Mapping[str, Region],
    chip_names: set[str],
    problems: list[Problem],
) -> Site | None:
    path = f"sites[{i}]"
    region = regions.get(row.region) if row.region else None
    if row.region and region is None:
        problems.append(Problem(f"{path}.region", f"unknown region {row.region!r} in the catalog"))
        return None
    missing = [
        f
        for f in ("jurisdiction", "electricity_usd_per_kwh", "pue", "carbon_g_per_kwh")
        if getattr(row, f) is None and region is None
    ]
    for f in missing:
        problems.append(Problem(f"{path}.{f}", "required when the site names no catalog region"))
    if missing:
        return None
    existing: dict[str, int] = {}
    for k, e in enumerate(row.existing):
        if e.chip not in chip_names:
            problems.append(
                Problem(f"{path}.existing[{k}].chip", f"{e.chip!r} is not one of the chips")
            )
        existing[e.chip] = existing.get(e.chip, 0) + e.cards
    if existing and not row.built:
        problems.append(
            Problem(f"{path}.existing", "a site with existing cards must be built: true")
        )
    return Site(
        name=row.name,
        region=row.region or row.name,
        jurisdiction=row.jurisdiction or region.jurisdiction,  # type: ignore[union-attr]
        power_mw=row.power_mw,
        card_cap=row.card_cap,
        build_cost_usd=0.0 if row.built else row.build_cost_usd,
        lead_time_years=0 if row.built else row.lead_time_years,
        built=row.built,
        electricity_usd_per_kwh=_first(
            row.electricity_usd_per_kwh, region, "electricity_usd_per_kwh"
        ),
        pue=_first(row.pue, region, "pue"),
        carbon_g_per_kwh=_first(row.carbon_g_per_kwh, region, "carbon_g_per_kwh"),
        facility_usd_per_it_mw=(
            row.facility_usd_per_it_mw
            if row.facility_usd_per_it_mw is not None
            else doc.defaults.facility_usd_per_it_mw
        ),
        existing=existing,
        source=row.source or (region.source if region else ""),
    )


def _first(value: float | None, region: Region | None, attr: str) -> float:
    return float(value if value is not None else getattr(region, attr))


def resolve_target(
    i: int, row: TargetIn, years: Sequence[int], sites: Sequence[Site], problems: list[Problem]
) -> Target | None:
    path = f"targets[{i}]"
    if row.year not in years:
        problems.append(
            Problem(f"{path}.year", f"{row.year} is outside the horizon {years[0]}-{years[-1]}")
        )
        return None
    chosen: set[str] = set()
    for k, w in enumerate(row.where):
        hit = {s.name for s in sites if w in (s.name, s.jurisdiction)}
        if not hit:
            known = sorted({s.name for s in sites} | {s.jurisdiction for s in sites})
            problems.append(
                Problem(
                    f"{path}.where[{k}]", f"{w!r} is no site or jurisdiction ({', '.join(known)})"
                )
            )
        chosen |= hit
    unit, value = ("h100e", row.h100e) if row.h100e is not None else ("eflops", row.eflops)
    where = f" in {'+'.join(row.where)}" if row.where else ""
    name = row.name or f"{row.year} {row.kind.value}{where}"
    return Target(
        name=name,
        year=row.year,
        kind=row.kind,
        unit=unit,
        value=float(value),  # type: ignore[arg-type]
        sites=frozenset(chosen) if row.where else frozenset(s.name for s in sites),
        effective=row.effective,
        source=row.source,
        largest_job_h100e=row.largest_job_h100e,
    )


def _duplicates(names: Sequence[str], path: str, problems: list[Problem]) -> None:
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            problems.append(Problem(f"{path}[{i}].name", f"duplicate name {n!r}"))
        seen.add(n)


def resolve(
    doc: ScenarioIn,
    file: str,
    accelerators: Mapping[str, AcceleratorType],
    regions: Mapping[str, Region],
    fabrics: Mapping[str, Fabric] | None = None,
) -> Scenario:
    problems: list[Problem] = []
    years = tuple(range(doc.start_year, doc.start_year + doc.horizon_years))
    _duplicates([c.name for c in doc.chips], "chips", problems)
    _duplicates([s.name for s in doc.sites], "sites", problems)
    chip_names = {c.name for c in doc.chips}
    sites = [
        s
        for i, row in enumerate(doc.sites)
        if (s := resolve_site(i, row, doc, regions, chip_names, problems))
    ]
    jurisdictions = sorted({s.jurisdiction for s in sites})
    chips = [
        c
        for i, row in enumerate(doc.chips)
        if (c := resolve_chip(i, row, doc, years, jurisdictions, accelerators, problems, fabrics))
    ]
    targets = [
        t
        for i, row in enumerate(doc.targets)
        if (t := resolve_target(i, row, years, sites, problems))
    ]
    caps: dict[str, float] = {}
    cap_from = None
    if doc.vendor_cap is not None:
        vendors = sorted({c.vendor for c in chips})  # sorted: the model row order is fixed
        caps = {v: doc.vendor_cap.share for v in vendors}
        for v, share in doc.vendor_cap.per_vendor.items():
            if v not in vendors:
                problems.append(
                    Problem(f"vendor_cap.per_vendor.{v}", f"no chip option has vendor {v!r}")
                )
            caps[v] = share
        cap_from = doc.vendor_cap.from_year
    budget = doc.budget
    per_year_budget: list[Any] = [None] * len(years)
    if budget is not None:
        bad = sorted(y for y in budget.per_year_usd if y not in years)
        if bad:
            problems.append(Problem("budget.per_year_usd", f"year(s) {bad} outside the horizon"))
        per_year_budget = [budget.per_year_usd.get(y) for y in years]
    if problems:
        raise ScenarioFileError(file, problems)
    return Scenario(
        name=doc.name,
        description=doc.description,
        years=years,
        discount_rate=doc.discount_rate,
        sites=tuple(sites),
        chips=tuple(chips),
        targets=tuple(targets),
        vendor_caps=caps,
        vendor_cap_from_year=cap_from,
        budget_total_usd=budget.total_usd if budget else None,
        budget_per_year_usd=tuple(per_year_budget),
        budget_includes_energy=budget.includes_energy if budget else False,
        load_factor=doc.defaults.load_factor,
        carbon_usd_per_t=doc.defaults.carbon_usd_per_t,
        tail_years=doc.defaults.tail_years,
        file=file,
    )


def parse_scenario(
    doc: Mapping[str, Any],
    file: str = "<scenario>",
    accelerators: Mapping[str, AcceleratorType] | None = None,
    regions: Mapping[str, Region] | None = None,
) -> Scenario:
    try:
        parsed = ScenarioIn.model_validate(doc, context={"fx": load_fx()})
    except ValidationError as exc:
        raise ScenarioFileError(file, problems_from_validation(exc)) from exc
    return resolve(
        parsed,
        file,
        accelerators if accelerators is not None else load_accelerators(),
        regions if regions is not None else load_regions(),
        load_fabrics() if accelerators is None else None,
    )


def load_scenario(path: str | Path) -> Scenario:
    p = Path(path)
    doc = read_yaml_mapping(p, ScenarioFileError)
    return parse_scenario(doc, str(p))
