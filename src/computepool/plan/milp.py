"""The capacity MILP: whole nodes of each chip option per site and year, at least net present cost.

Indices: chip c, site s, year t, workload kind k. Variables

- ``n[c,s,t]`` integer: nodes of chip c put into service at site s in year t (bought that year);
- ``x[c,s,t]`` cards in service: ``x[t] = x[t-1] + per_node * n[t]`` (plus cards already there);
- ``a[c,s,t,k]`` cards of x given to workload kind k (``sum_k a <= x``);
- ``o[s,t]`` binary: construction of site s starts in year t; it hosts cards from ``t + lead``.

Constraints: every target (``sum coef * a >= value`` over its sites), facility power
(``sum x * IT power * PUE <= power cap``, 0 before the site is in service), card caps, yearly
supply per chip, availability per jurisdiction and year (bounds), vendor concentration
(``H100e of vendor v <= share * all H100e``), budget (capital spending, optionally with energy).

Objective: sum over years of ``(capex + site builds + energy + carbon price) / (1 + r)^t``, plus
the final fleet's energy for ``tail_years`` more years. Capex per card = card price x system
overhead + facility cost per IT MW x IT power. With ``elastic=True`` every target and cap gets a
slack variable and the objective becomes the weighted sum of relative violations (explain.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from computepool.plan.buyable import add_fabric_vars, add_order_vars
from computepool.plan.lp import INF, Model
from computepool.plan.scenario import Chip, Scenario, Site

HOURS_PER_YEAR = 8760.0
#: Objective unit: millions of USD (keeps HiGHS's tolerances meaningful at fleet scale).
COST_UNIT = 1e6
#: Penalty per relative unit of a cap violation vs a target shortfall in the elastic model:
#: caps give way only when no shortfall of targets can restore feasibility.
CAP_WEIGHT = 1000.0


# ------------------------------------------------------------------------------ coefficients


def discount(sc: Scenario, t: int) -> float:
    return (1.0 + sc.discount_rate) ** -t


def tail_factor(sc: Scenario) -> float:
    """Discount weight of the years after the horizon whose energy the final fleet pays."""
    last = len(sc.years) - 1
    return sum(discount(sc, last + j) for j in range(1, sc.tail_years + 1))


def capex_per_card(chip: Chip, site: Site, t: int) -> float:
    return chip.capex_usd[t] + site.facility_usd_per_it_mw * chip.it_power_w / 1e6


def power_mw_per_card(chip: Chip, site: Site) -> float:
    """Facility power of one card at full load (IT power x PUE), MW."""
    return chip.it_power_w * site.pue / 1e6


def energy_kwh_per_card_year(sc: Scenario, chip: Chip, site: Site) -> float:
    return chip.it_power_w / 1000.0 * site.pue * HOURS_PER_YEAR * sc.load_factor


def opex_per_card_year(sc: Scenario, chip: Chip, site: Site) -> float:
    """Electricity plus carbon price of one card for one year, USD."""
    kwh = energy_kwh_per_card_year(sc, chip, site)
    return (
        kwh * site.electricity_usd_per_kwh + kwh * site.carbon_g_per_kwh / 1e6 * sc.carbon_usd_per_t
    )


def resale_value(sc: Scenario, chip: Chip, t: int) -> float:
    """Present value of selling one node bought in year t when the fleet retires (after the
    horizon and ``tail_years``): ``resale_fraction`` x its all-in capex, discounted."""
    if chip.resale_fraction <= 0:
        return 0.0
    end = len(sc.years) + sc.tail_years
    return chip.resale_fraction * chip.capex_usd[t] * chip.per_node * discount(sc, end)


def can_buy(sc: Scenario, c: int, s: int, t: int) -> bool:
    chip, site = sc.chips[c], sc.sites[s]
    if not chip.available[site.jurisdiction][t]:
        return False
    if chip.supply[t] is not None and chip.supply[t] < chip.per_node:
        return False
    return site.built or t >= site.lead_time_years


def node_upper_bound(sc: Scenario, c: int, s: int, t: int) -> float:
    chip, site = sc.chips[c], sc.sites[s]
    if not can_buy(sc, c, s, t):
        return 0.0
    cards = site.power_mw / power_mw_per_card(chip, site)
    if site.card_cap is not None:
        cards = min(cards, site.card_cap)
    if chip.supply[t] is not None:
        cards = min(cards, chip.supply[t])
    return float(math.floor(cards / chip.per_node + 1e-9))


# ------------------------------------------------------------------------------ the model


@dataclass(frozen=True)
class Cap:
    """A capacity-type row: what limits, its limit, and its slack variable (elastic model)."""

    kind: str  # power | cards | supply | vendor | budget
    label: str
    row: int
    #: The limit in natural units (MW, cards, H100e share, USD); used for reporting.
    limit: float
    year: int | None
    slack: int = -1
    unit: str = ""


@dataclass(frozen=True)
class TargetRow:
    index: int
    row: int
    slack: int = -1


@dataclass
class Layout:
    """Where each decision lives in the model's variable vector."""

    n: np.ndarray  # (C, S, T) int var index
    x: np.ndarray  # (C, S, T)
    a: np.ndarray  # (C, S, T, K)
    o: np.ndarray  # (S, T), -1 where none
    #: Binaries of buyable.py, -1 where none: orders (C, S, T), chip families at sites (C, S, T),
    #: fabrics that hold a target's largest job (C, S, T, K).
    z: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), dtype=np.int64))
    y: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), dtype=np.int64))
    f: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0, 0), dtype=np.int64))
    caps: list[Cap] = field(default_factory=list)
    targets: list[TargetRow] = field(default_factory=list)
    elastic: bool = False


def _site_open_vars(m: Model, sc: Scenario, lay: Layout) -> None:
    T = len(sc.years)
    for s, site in enumerate(sc.sites):
        if site.built:
            continue
        for t in range(T):
            if t + site.lead_time_years <= T - 1:
                lay.o[s, t] = m.var(
                    f"open[{site.name},{sc.years[t]}]",
                    ub=1,
                    integer=True,
                    cost=site.build_cost_usd * discount(sc, t) / COST_UNIT,
                )
        m.row(f"open_once[{site.name}]", ((v, 1.0) for v in lay.o[s] if v >= 0), hi=1.0)


def _in_service_terms(sc: Scenario, lay: Layout, s: int, t: int, scale: float) -> list:
    """Terms of ``-scale * in_service[s,t]`` for a row ``usage - scale * in_service <= 0``."""
    site = sc.sites[s]
    return [
        (int(lay.o[s, tau]), -scale)
        for tau in range(0, t - site.lead_time_years + 1)
        if lay.o[s, tau] >= 0
    ]


def _fleet_vars(m: Model, sc: Scenario, lay: Layout) -> None:
    C, S, T, K = lay.a.shape
    for c, chip in enumerate(sc.chips):
        for s, site in enumerate(sc.sites):
            opex = opex_per_card_year(sc, chip, site)
            for t in range(T):
                tag = f"{chip.name},{site.name},{sc.years[t]}"
                capex = capex_per_card(chip, site, t) * chip.per_node
                lay.n[c, s, t] = m.var(
                    f"nodes[{tag}]",
                    ub=node_upper_bound(sc, c, s, t),
                    integer=True,
                    cost=(capex * discount(sc, t) - resale_value(sc, chip, t)) / COST_UNIT,
                )
                w = discount(sc, t) + (tail_factor(sc) if t == T - 1 else 0.0)
                lay.x[c, s, t] = m.var(f"cards[{tag}]", cost=opex * w / COST_UNIT)
                prev = [(int(lay.x[c, s, t - 1]), -1.0)] if t else []
                rhs = float(site.existing.get(chip.name, 0)) if t == 0 else 0.0
                m.row(
                    f"fleet[{tag}]",
                    [(int(lay.x[c, s, t]), 1.0), *prev, (int(lay.n[c, s, t]), -chip.per_node)],
                    lo=rhs,
                    hi=rhs,
                )
                for k, kind in enumerate(sc.kinds):
                    lay.a[c, s, t, k] = m.var(f"alloc[{tag},{kind.value}]")
                m.row(
                    f"alloc[{tag}]",
                    [(int(lay.x[c, s, t]), -1.0), *((int(v), 1.0) for v in lay.a[c, s, t])],
                    hi=0.0,
                )


def _slack(m: Model, lay: Layout, name: str, penalty: float) -> int:
    return m.var(f"slack[{name}]", cost=penalty) if lay.elastic else -1


def _cap_row(
    m: Model,
    lay: Layout,
    kind: str,
    label: str,
    terms: list,
    limit: float,
    year: int | None,
    unit: str,
    scale: float,
    rhs: float | None = None,
) -> None:
    """Add ``terms <= rhs`` (rhs defaults to ``limit``), elastic if the layout is."""
    sl = _slack(m, lay, f"{kind}:{label}", CAP_WEIGHT / max(scale, 1e-9))
    if sl >= 0:
        terms = [*terms, (sl, -1.0)]
    row = m.row(f"{kind}[{label}]", terms, hi=limit if rhs is None else rhs)
    lay.caps.append(Cap(kind, label, row, limit, year, sl, unit))


def _site_caps(m: Model, sc: Scenario, lay: Layout) -> None:
    for s, site in enumerate(sc.sites):
        for t, year in enumerate(sc.years):
            label = f"{site.name} {year}"
            power = [
                (int(lay.x[c, s, t]), power_mw_per_card(chip, site))
                for c, chip in enumerate(sc.chips)
            ]
            gate = [] if site.built else _in_service_terms(sc, lay, s, t, site.power_mw)
            rhs = site.power_mw if site.built else 0.0
            _cap_row(
                m, lay, "power", label, power + gate, site.power_mw, year, "MW", site.power_mw, rhs
            )
            if site.card_cap is not None:
                cards = [(int(lay.x[c, s, t]), 1.0) for c in range(len(sc.chips))]
                gate = [] if site.built else _in_service_terms(sc, lay, s, t, site.card_cap)
                rhs = site.card_cap if site.built else 0.0
                _cap_row(
                    m,
                    lay,
                    "cards",
                    label,
                    cards + gate,
                    site.card_cap,
                    year,
                    "cards",
                    max(site.card_cap, 1),
                    rhs,
                )


def _supply_caps(m: Model, sc: Scenario, lay: Layout) -> None:
    for c, chip in enumerate(sc.chips):
        for t, year in enumerate(sc.years):
            limit = chip.supply[t]
            if limit is None:
                continue
            terms = [(int(lay.n[c, s, t]), float(chip.per_node)) for s in range(len(sc.sites))]
            _cap_row(
                m,
                lay,
                "supply",
                f"{chip.name} {year}",
                terms,
                limit,
                year,
                "cards",
                max(limit, 1000),
            )


def _vendor_caps(m: Model, sc: Scenario, lay: Layout) -> None:
    for v, share in sc.vendor_caps.items():
        if share >= 1.0:
            continue
        for t, year in enumerate(sc.years):
            if sc.vendor_cap_from_year is not None and year < sc.vendor_cap_from_year:
                continue
            terms = [
                (int(lay.x[c, s, t]), chip.h100_equiv * ((chip.vendor == v) - share))
                for c, chip in enumerate(sc.chips)
                for s in range(len(sc.sites))
            ]
            # limit reported as the share; the row's right-hand side is 0 (H100e over the cap).
            _cap_row(m, lay, "vendor", f"{v} {year}", terms, share, year, "share", 1000.0, 0.0)


def spend_terms(sc: Scenario, lay: Layout, t: int, with_energy: bool) -> list:
    """Terms of the USD spent in year t (capex, builds, and energy if asked), undiscounted."""
    terms = []
    for c, chip in enumerate(sc.chips):
        for s, site in enumerate(sc.sites):
            terms.append((int(lay.n[c, s, t]), capex_per_card(chip, site, t) * chip.per_node))
            if with_energy:
                terms.append((int(lay.x[c, s, t]), opex_per_card_year(sc, chip, site)))
    for s, site in enumerate(sc.sites):
        if lay.o[s, t] >= 0:
            terms.append((int(lay.o[s, t]), site.build_cost_usd))
        for c, chip in enumerate(sc.chips):
            # the fixed cost of a family arriving in year t: fixed * (y[t] - y[t-1])
            if lay.y.size and lay.y[c, s, t] >= 0:
                terms.append((int(lay.y[c, s, t]), chip.fixed_cost_usd))
                if t > 0 and lay.y[c, s, t - 1] >= 0:
                    terms.append((int(lay.y[c, s, t - 1]), -chip.fixed_cost_usd))
    return terms


def _budget_caps(m: Model, sc: Scenario, lay: Layout) -> None:
    energy = sc.budget_includes_energy
    if sc.budget_total_usd is not None:
        terms = [tm for t in range(len(sc.years)) for tm in spend_terms(sc, lay, t, energy)]
        b = sc.budget_total_usd
        _cap_row(m, lay, "budget", "total", terms, b, None, "USD", max(b, 1.0))
    for t, b in enumerate(sc.budget_per_year_usd):
        if b is not None:
            year = sc.years[t]
            _cap_row(
                m,
                lay,
                "budget",
                str(year),
                spend_terms(sc, lay, t, energy),
                b,
                year,
                "USD",
                max(b, 1.0),
            )


def _target_rows(m: Model, sc: Scenario, lay: Layout) -> None:
    kinds = sc.kinds
    for i, tg in enumerate(sc.targets):
        t, k = sc.year_index(tg.year), kinds.index(tg.kind)
        terms = [
            (int(lay.a[c, s, t, k]), tg.coefficient(chip))
            for c, chip in enumerate(sc.chips)
            for s, site in enumerate(sc.sites)
            if site.name in tg.sites
        ]
        sl = _slack(m, lay, f"target:{tg.name}", 1.0 / tg.value)
        if sl >= 0:
            terms.append((sl, 1.0))
        row = m.row(f"target[{tg.name}]", terms, lo=tg.value)
        lay.targets.append(TargetRow(i, row, sl))


def build_model(sc: Scenario, elastic: bool = False) -> tuple[Model, Layout]:
    C, S, T, K = len(sc.chips), len(sc.sites), len(sc.years), len(sc.kinds)
    m = Model()
    lay = Layout(
        n=np.full((C, S, T), -1, dtype=np.int64),
        x=np.full((C, S, T), -1, dtype=np.int64),
        a=np.full((C, S, T, K), -1, dtype=np.int64),
        o=np.full((S, T), -1, dtype=np.int64),
        z=np.full((C, S, T), -1, dtype=np.int64),
        y=np.full((C, S, T), -1, dtype=np.int64),
        f=np.full((C, S, T, K), -1, dtype=np.int64),
        elastic=elastic,
    )
    _site_open_vars(m, sc, lay)
    _fleet_vars(m, sc, lay)
    add_order_vars(m, sc, lay)
    add_fabric_vars(m, sc, lay)
    _target_rows(m, sc, lay)
    _site_caps(m, sc, lay)
    _supply_caps(m, sc, lay)
    _vendor_caps(m, sc, lay)
    _budget_caps(m, sc, lay)
    return m, lay


def cost_vector(m: Model, lay: Layout) -> np.ndarray:
    """The plain cost objective (slack penalties removed)."""
    c = np.asarray(m.cost, dtype=float).copy()
    for cap in lay.caps:
        if cap.slack >= 0:
            c[cap.slack] = 0.0
    for tr in lay.targets:
        if tr.slack >= 0:
            c[tr.slack] = 0.0
    return c


def penalty_vector(m: Model, lay: Layout) -> np.ndarray:
    """Only the slack penalties (the elastic model's first phase)."""
    p = np.zeros(m.num_vars)
    for cap in lay.caps:
        if cap.slack >= 0:
            p[cap.slack] = m.cost[cap.slack]
    for tr in lay.targets:
        if tr.slack >= 0:
            p[tr.slack] = m.cost[tr.slack]
    return p


__all__ = ["INF", "Cap", "Layout", "build_model", "cost_vector", "penalty_vector"]
