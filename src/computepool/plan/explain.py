"""Why a scenario is infeasible, and what limits a plan.

``elastic_solve`` solves the scenario with a slack variable on every target and cap (milp.py,
``elastic=True``) in two phases: first the least weighted relative violation (targets give way
before caps: a cap is only exceeded when no shortfall of targets restores feasibility, e.g. an
existing fleet above a vendor cap), then, holding that violation, the cheapest plan. The
non-zero slacks are the explanation: which target cannot be met or which cap must give, and by
how much. ``binding_caps`` lists the caps a solution uses fully, for feasible plans too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from computepool.plan.lp import Model, Solution
from computepool.plan.milp import Layout, build_model, cost_vector, penalty_vector
from computepool.plan.scenario import Scenario

#: A cap counts as binding when a solution uses at least this fraction of it.
BINDING_FRACTION = 0.995
#: Slack below this (in the row's units) is solver noise.
SLACK_TOL = 1e-6


@dataclass(frozen=True)
class Violation:
    kind: str  # target | power | cards | supply | vendor | budget
    label: str
    year: int | None
    #: Target value, or the cap's limit.
    limit: float
    #: Shortfall of a target or excess over a cap, in ``unit``.
    amount: float
    unit: str

    @property
    def relative(self) -> float:
        return self.amount / self.limit if self.limit else float("inf")

    def sentence(self) -> str:
        if self.kind == "target":
            return (
                f"target {self.label} ({_num(self.limit)} {self.unit}) cannot be met: "
                f"short by {_num(self.amount)} {self.unit} ({self.relative:.1%})"
            )
        if self.kind == "vendor":
            return (
                f"vendor cap {self.label} ({self.limit:.0%} of compute) must give way: "
                f"{_num(self.amount)} H100e above it"
            )
        return (
            f"{self.kind} cap {self.label} ({_num(self.limit)} {self.unit}) must give way: "
            f"{_num(self.amount)} {self.unit} above it ({self.relative:.1%})"
        )


@dataclass(frozen=True)
class Binding:
    kind: str
    label: str
    year: int | None
    used: float
    limit: float
    unit: str

    def sentence(self) -> str:
        if self.kind == "vendor":
            return f"vendor cap {self.label}: at its {self.limit:.0%} share"
        return f"{self.kind} {self.label}: {_num(self.used)} of {_num(self.limit)} {self.unit}"


@dataclass(frozen=True)
class Explanation:
    violations: tuple[Violation, ...]
    binding: tuple[Binding, ...]
    notes: tuple[str, ...]

    def lines(self) -> list[str]:
        out = [v.sentence() for v in self.violations]
        if self.binding:
            out.append("caps used to the full in the closest plan:")
            out += [f"  {b.sentence()}" for b in self.binding]
        out += self.notes
        return out


def _num(v: float) -> str:
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:,.3g}"


def cap_usage(sc: Scenario, m: Model, lay: Layout, x: np.ndarray) -> list[tuple]:
    """(cap, used) for every cap row, ``used`` in the cap's natural unit."""
    act = m.row_activity(x)
    out = []
    for cap in lay.caps:
        used = float(act[cap.row])
        if cap.slack >= 0:
            used += float(x[cap.slack])
        if cap.kind in ("power", "cards"):
            # the row is usage - limit * in_service <= 0 for unbuilt sites: add the gate back
            site = next(s for s in sc.sites if cap.label.startswith(s.name + " "))
            if not site.built:
                used += cap.limit * _in_service(sc, lay, x, site.name, cap.year)
        if cap.kind == "vendor":
            used = _vendor_share(sc, lay, x, cap)
        out.append((cap, used))
    return out


def _in_service(sc: Scenario, lay: Layout, x: np.ndarray, site: str, year: int | None) -> float:
    s = [si.name for si in sc.sites].index(site)
    lead = sc.sites[s].lead_time_years
    t = sc.year_index(year) if year is not None else len(sc.years) - 1
    return float(sum(x[v] for v in lay.o[s, : max(t - lead + 1, 0)] if v >= 0))


def _vendor_share(sc: Scenario, lay: Layout, x: np.ndarray, cap) -> float:
    vendor = cap.label.rsplit(" ", 1)[0]
    t = sc.year_index(cap.year)
    h = np.array([c.h100_equiv for c in sc.chips])
    cards = x[lay.x[:, :, t]].sum(axis=1)
    total = float((h * cards).sum())
    mine = float(sum(h[c] * cards[c] for c, chip in enumerate(sc.chips) if chip.vendor == vendor))
    return mine / total if total > 0 else 0.0


def binding_caps(sc: Scenario, m: Model, lay: Layout, x: np.ndarray) -> tuple[Binding, ...]:
    out = []
    for cap, used in cap_usage(sc, m, lay, x):
        if cap.limit > 0 and used >= BINDING_FRACTION * cap.limit:
            out.append(Binding(cap.kind, cap.label, cap.year, used, cap.limit, cap.unit))
    return tuple(out)


def violations(sc: Scenario, lay: Layout, x: np.ndarray) -> tuple[Violation, ...]:
    out = []
    for tr in lay.targets:
        if tr.slack >= 0 and x[tr.slack] > SLACK_TOL * max(1.0, sc.targets[tr.index].value):
            tg = sc.targets[tr.index]
            unit = "H100e" if tg.unit == "h100e" else "EFLOPS"
            out.append(Violation("target", tg.name, tg.year, tg.value, float(x[tr.slack]), unit))
    for cap in lay.caps:
        if cap.slack >= 0 and x[cap.slack] > SLACK_TOL * max(1.0, cap.limit):
            out.append(
                Violation(cap.kind, cap.label, cap.year, cap.limit, float(x[cap.slack]), cap.unit)
            )
    return tuple(out)


def context_notes(sc: Scenario, found: tuple[Violation, ...]) -> tuple[str, ...]:
    """Facts that explain shortfalls: sites not yet in service, chips blocked where needed."""
    notes = []
    years = {v.year for v in found if v.kind == "target"}
    for site in sc.sites:
        if site.built:
            continue
        first = sc.years[0] + site.lead_time_years
        if any(y is not None and y < first for y in years):
            notes.append(
                f"site {site.name} cannot host cards before {first} "
                f"(lead time {site.lead_time_years} year(s) from {sc.years[0]})"
            )
    for v in found:
        if v.kind != "target":
            continue
        tg = next(t for t in sc.targets if t.name == v.label)
        t = sc.year_index(tg.year)
        juris = sorted({s.jurisdiction for s in sc.sites if s.name in tg.sites})
        blocked = [c.name for c in sc.chips if not any(any(c.available[j][: t + 1]) for j in juris)]
        if blocked:
            notes.append(
                f"for {tg.name}: not purchasable in {'/'.join(juris)} by {tg.year}: "
                + ", ".join(blocked)
            )
        if tg.largest_job_h100e is not None:
            small = [
                f"{c.name} (needs {c.job_cards(tg.largest_job_h100e):,} cards, largest built "
                f"{c.scale_out_cards:,})"
                for c in sc.chips
                if c.job_cards(tg.largest_job_h100e) > c.scale_out_cards
            ]
            if small:
                notes.append(
                    f"for {tg.name}: no fabric of these chips holds its largest job of "
                    f"{tg.largest_job_h100e:,.0f} H100e: " + ", ".join(small)
                )
    return tuple(notes)


def elastic_solve(
    sc: Scenario, time_limit: float = 60.0, mip_rel_gap: float = 1e-3
) -> tuple[Model, Layout, Solution]:
    """Least violation first, then least cost at that violation."""
    m, lay = build_model(sc, elastic=True)
    pen = penalty_vector(m, lay)
    first = m.solve(time_limit, mip_rel_gap, cost=pen)
    if not first.feasible:
        return m, lay, first
    best = float(pen @ first.x)
    m.row("elastic_hold", ((i, p) for i, p in enumerate(pen) if p), hi=best * (1 + 1e-9) + 1e-9)
    second = m.solve(time_limit, mip_rel_gap, cost=cost_vector(m, lay))
    if not second.feasible:
        return m, lay, first
    return (
        m,
        lay,
        Solution(
            second.status,
            second.x,
            second.objective,
            second.gap,
            second.dual_bound,
            first.seconds + second.seconds,
            second.message,
        ),
    )


def explain(sc: Scenario, m: Model, lay: Layout, x: np.ndarray) -> Explanation:
    found = violations(sc, lay, x)
    return Explanation(found, binding_caps(sc, m, lay, x), context_notes(sc, found))
