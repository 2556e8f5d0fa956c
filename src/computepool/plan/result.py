"""``Plan``: the solved build schedule and everything derived from it; ``solve_plan`` makes one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from computepool.plan.explain import Binding, Explanation, binding_caps, elastic_solve, explain
from computepool.plan.lines import chip_mix, schedule_lines
from computepool.plan.lp import Model, Solution
from computepool.plan.milp import (
    COST_UNIT,
    Layout,
    build_model,
    capex_per_card,
    discount,
    energy_kwh_per_card_year,
    opex_per_card_year,
    power_mw_per_card,
    resale_value,
    tail_factor,
)
from computepool.plan.scenario import Scenario


@dataclass(frozen=True)
class SolveStats:
    status: str
    seconds: float
    gap: float | None
    variables: int
    rows: int
    integers: int
    message: str = ""


@dataclass(frozen=True)
class Plan:
    """A build schedule. ``feasible`` False: the closest plan, with ``explanation``."""

    scenario: Scenario
    feasible: bool
    nodes: np.ndarray  # (C, S, T) nodes put into service
    cards: np.ndarray  # (C, S, T) cards in service
    alloc: np.ndarray  # (C, S, T, K) cards given to each workload kind
    #: Site name -> year construction starts (None: not built; built sites: first year).
    site_start: dict[str, int | None]
    stats: SolveStats
    binding: tuple[Binding, ...] = ()
    explanation: Explanation | None = None
    #: (C, S, T) chip families at each site by each year (their fixed cost is paid on arrival).
    families: np.ndarray | None = None

    # ---- money -----------------------------------------------------------------------
    def _per_card(self, fn) -> np.ndarray:
        sc = self.scenario
        return np.array([[fn(c, s) for s in sc.sites] for c in sc.chips])

    def capex_by_year(self) -> np.ndarray:
        """Cards plus facility, USD per year (undiscounted)."""
        sc = self.scenario
        out = np.zeros(len(sc.years))
        for t in range(len(sc.years)):
            price = self._per_card(lambda c, s, t=t: capex_per_card(c, s, t))
            out[t] = float((self.nodes[:, :, t] * self._per_node()[:, None] * price).sum())
        return out

    def _per_node(self) -> np.ndarray:
        return np.array([c.per_node for c in self.scenario.chips], dtype=float)

    def build_by_year(self) -> np.ndarray:
        sc = self.scenario
        out = np.zeros(len(sc.years))
        for site in sc.sites:
            y = self.site_start.get(site.name)
            if y is not None and not site.built:
                out[sc.year_index(y)] += site.build_cost_usd
        return out

    def energy_mwh_by_year(self) -> np.ndarray:
        kwh = self._per_card(lambda c, s: energy_kwh_per_card_year(self.scenario, c, s))
        return np.einsum("cst,cs->t", self.cards, kwh) / 1000.0

    def opex_by_year(self) -> np.ndarray:
        """Electricity plus carbon price, USD per year."""
        usd = self._per_card(lambda c, s: opex_per_card_year(self.scenario, c, s))
        return np.einsum("cst,cs->t", self.cards, usd)

    def carbon_t_by_year(self) -> np.ndarray:
        sc = self.scenario
        g = np.array([s.carbon_g_per_kwh for s in sc.sites])
        kwh = self._per_card(lambda c, s: energy_kwh_per_card_year(sc, c, s))
        return np.einsum("cst,cs,s->t", self.cards, kwh, g) / 1e6

    def fixed_by_year(self) -> np.ndarray:
        """Fixed costs of bringing chip families into sites, in the year each arrives."""
        sc = self.scenario
        out = np.zeros(len(sc.years))
        if self.families is not None:
            fixed = np.array([c.fixed_cost_usd for c in sc.chips])
            fam = self.families.astype(float)
            arrive = np.diff(fam, axis=2, prepend=0.0)  # 1 in the year a family arrives
            out = np.einsum("cst,c->t", arrive, fixed)
        return out

    def total_by_year(self) -> np.ndarray:
        return (
            self.capex_by_year() + self.build_by_year() + self.fixed_by_year() + self.opex_by_year()
        )

    def resale_pv_usd(self) -> float:
        """Present value of selling the bought cards when the fleet retires."""
        sc = self.scenario
        return float(
            sum(
                self.nodes[c, s, t] * resale_value(sc, chip, t)
                for c, chip in enumerate(sc.chips)
                for s in range(len(sc.sites))
                for t in range(len(sc.years))
            )
        )

    def npv_usd(self) -> float:
        sc = self.scenario
        df = np.array([discount(sc, t) for t in range(len(sc.years))])
        tail = self.opex_by_year()[-1] * tail_factor(sc)
        return float((self.total_by_year() * df).sum() + tail - self.resale_pv_usd())

    # ---- capacity ----------------------------------------------------------------------
    def power_mw(self) -> np.ndarray:
        """(S, T) facility power at full load, MW."""
        pw = self._per_card(power_mw_per_card)
        return np.einsum("cst,cs->st", self.cards, pw)

    def h100e_by_chip(self) -> np.ndarray:
        """(C, T) installed peak H100-equivalents."""
        h = np.array([c.h100_equiv for c in self.scenario.chips])
        return self.cards.sum(axis=1) * h[:, None]

    def effective_by_chip(self) -> np.ndarray:
        """(C, T) effective H100e each chip delivers to the workload kinds it serves."""
        sc = self.scenario
        eff = np.array([[c.h100_equiv * c.efficiency[k] for k in sc.kinds] for c in sc.chips])
        return np.einsum("cstk,ck->ct", self.alloc, eff.reshape(len(sc.chips), len(sc.kinds)))

    def vendor_share(self) -> dict[str, np.ndarray]:
        sc = self.scenario
        by_chip = self.h100e_by_chip()
        total = np.maximum(by_chip.sum(axis=0), 1e-12)
        return {
            v: by_chip[[c.vendor == v for c in sc.chips]].sum(axis=0) / total for v in sc.vendors
        }

    def achieved(self) -> list[float]:
        """Compute delivered to each target, in its unit."""
        sc = self.scenario
        out = []
        for tg in sc.targets:
            t, k = sc.year_index(tg.year), sc.kinds.index(tg.kind)
            total = 0.0
            for c, chip in enumerate(sc.chips):
                for s, site in enumerate(sc.sites):
                    if site.name in tg.sites:
                        total += tg.coefficient(chip) * self.alloc[c, s, t, k]
            out.append(total)
        return out

    # ---- export ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        sc = self.scenario
        schedule = schedule_lines(self)
        return {
            "scenario": sc.name,
            "feasible": self.feasible,
            "npv_usd": self.npv_usd(),
            "years": list(sc.years),
            "purchase_lines": sum(1 for r in schedule if r["nodes"] > 0),
            "chip_mix_cards": chip_mix(self),
            "schedule": schedule,
            "site_start": self.site_start,
            "cost_by_year_usd": {
                "capex": self.capex_by_year().tolist(),
                "site_build": self.build_by_year().tolist(),
                "chip_site_fixed": self.fixed_by_year().tolist(),
                "resale_credit_present_value": self.resale_pv_usd(),
                "energy_and_carbon": self.opex_by_year().tolist(),
                "total": self.total_by_year().tolist(),
            },
            "energy_mwh_by_year": self.energy_mwh_by_year().tolist(),
            "carbon_t_by_year": self.carbon_t_by_year().tolist(),
            "power_mw": {s.name: self.power_mw()[i].tolist() for i, s in enumerate(sc.sites)},
            "vendor_share": {v: a.tolist() for v, a in self.vendor_share().items()},
            "targets": [
                {"name": tg.name, "unit": tg.unit, "value": tg.value, "achieved": got}
                for tg, got in zip(sc.targets, self.achieved(), strict=True)
            ],
            "binding": [b.sentence() for b in self.binding],
            "explanation": self.explanation.lines() if self.explanation else None,
            "solve": {
                "status": self.stats.status,
                # no wall-clock seconds here: the same input gives the same bytes
                "gap": None if self.stats.gap is None else round(self.stats.gap, 6),
                "variables": self.stats.variables,
                "rows": self.stats.rows,
                "integers": self.stats.integers,
            },
        }

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


def _plan_from(
    sc: Scenario, m: Model, lay: Layout, sol: Solution, feasible: bool, expl: Explanation | None
) -> Plan:
    x = sol.x
    assert x is not None
    nodes = np.rint(x[lay.n]).astype(np.int64)
    cards = np.rint(x[lay.x] * 1e6) / 1e6
    alloc = x[lay.a] if lay.a.size else np.zeros(lay.a.shape)
    start: dict[str, int | None] = {}
    for s, site in enumerate(sc.sites):
        if site.built:
            start[site.name] = sc.years[0]
            continue
        opened = [t for t in range(len(sc.years)) if lay.o[s, t] >= 0 and x[lay.o[s, t]] > 0.5]
        start[site.name] = sc.years[opened[0]] if opened else None
    stats = SolveStats(
        sol.status, sol.seconds, sol.gap, m.num_vars, m.num_rows, m.num_integer, sol.message
    )
    fam = np.zeros(lay.y.shape, dtype=bool)
    on = lay.y >= 0
    fam[on] = x[lay.y[on]] > 0.5
    binding = binding_caps(sc, m, lay, x)
    return Plan(sc, feasible, nodes, cards, alloc, start, stats, binding, expl, fam)


class PlanError(RuntimeError):
    """The solver failed for a reason other than infeasibility (time limit without a plan)."""


def solve_plan(sc: Scenario, time_limit: float = 60.0, mip_rel_gap: float = 1e-3) -> Plan:
    m, lay = build_model(sc)
    sol = m.solve(time_limit, mip_rel_gap)
    if sol.feasible:
        return _plan_from(sc, m, lay, sol, True, None)
    if sol.status != "infeasible":
        raise PlanError(f"HiGHS found no plan: {sol.status} ({sol.message})")
    em, elay, esol = elastic_solve(sc, time_limit, mip_rel_gap)
    if not esol.feasible:
        raise PlanError(f"even the elastic model has no solution: {esol.status} ({esol.message})")
    return _plan_from(sc, em, elay, esol, False, explain(sc, em, elay, esol.x))


__all__ = ["COST_UNIT", "Plan", "PlanError", "SolveStats", "solve_plan"]
