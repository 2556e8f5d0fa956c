"""The planner's binaries that make a plan buyable and trainable (issue: "a plan an operator
could sign"). Added to the capacity MILP by ``milp.build_model``:

- **minimum order**: ``z[c,s,t]`` binary, an order of chip c at site s in year t; nodes bought
  ``n`` are 0 or between ``min_order_nodes`` and the node bound: ``lot * z <= n <= ub * z``;
- **fixed cost per (chip family, site)**: ``y[c,s,t]`` binary, chip c is at site s by year t
  (``y[t-1] <= y[t]``); ``fixed_cost_usd`` is paid once, in the year it arrives; every order
  needs it: ``z[c,s,t] <= y[c,s,t]`` (``n <= ub * y`` without lots);
- **fabric**: for a target kind k with a largest job of J peak H100e in year t, ``f[c,s,t,k]``
  binary says the fabric of chip c at site s (its cards in service) holds that job:
  ``x >= ceil(J / h100_equiv) * f`` and ``alloc[c,s,t,k] <= cap * f``. A chip whose scale-out
  limit (largest cluster built with it) is below the job's cards never counts toward k.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from computepool.plan.lp import Model
from computepool.plan.scenario import Scenario

if TYPE_CHECKING:
    from computepool.plan.milp import Layout

#: Objective unit, as in milp.py (millions of USD).
COST_UNIT = 1e6


def largest_jobs(sc: Scenario) -> dict[tuple[int, int], float]:
    """(year index, kind index) -> the largest job any target of that kind and year names."""
    out: dict[tuple[int, int], float] = {}
    for tg in sc.targets:
        if tg.largest_job_h100e is None:
            continue
        key = (sc.year_index(tg.year), sc.kinds.index(tg.kind))
        out[key] = max(out.get(key, 0.0), tg.largest_job_h100e)
    return out


def max_cards_at(sc: Scenario, c: int, s: int) -> float:
    """Most cards of chip c site s could ever hold (its power and card caps, plus those there)."""
    from computepool.plan.milp import power_mw_per_card

    chip, site = sc.chips[c], sc.sites[s]
    cards = site.power_mw / power_mw_per_card(chip, site)
    if site.card_cap is not None:
        cards = min(cards, site.card_cap)
    return math.floor(cards + 1e-9) + site.existing.get(chip.name, 0)


def _family_vars(m: Model, sc: Scenario, lay: Layout, c: int, s: int) -> None:
    """``y[c,s,t]``: chip family c is at site s by year t (monotone). Its fixed cost is paid in
    the year it arrives: coefficient ``fixed * (d_t - d_{t+1})`` telescopes to ``fixed * d_t``
    of the first year with ``y = 1``."""
    from computepool.plan.milp import discount

    chip, site = sc.chips[c], sc.sites[s]
    T = len(sc.years)
    buy = [t for t in range(T) if m.ub[int(lay.n[c, s, t])] >= chip.min_order_nodes]
    if chip.fixed_cost_usd <= 0 or not buy:
        return
    prev = -1
    for t in range(buy[0], T):
        d_next = discount(sc, t + 1) if t < T - 1 else 0.0
        cost = chip.fixed_cost_usd * (discount(sc, t) - d_next)
        y = m.var(
            f"family[{chip.name},{site.name},{sc.years[t]}]",
            ub=1,
            integer=True,
            cost=cost / COST_UNIT,
        )
        lay.y[c, s, t] = y
        if prev >= 0:
            m.row(
                f"family_stays[{chip.name},{site.name},{sc.years[t]}]",
                [(prev, 1.0), (y, -1.0)],
                hi=0,
            )
        prev = y


def add_order_vars(m: Model, sc: Scenario, lay: Layout) -> None:
    """Minimum order lots (``z``) and the fixed cost per chip family and site (``y``)."""
    C, S, T = lay.n.shape
    for c, chip in enumerate(sc.chips):
        lot = chip.min_order_nodes
        for s, site in enumerate(sc.sites):
            _family_vars(m, sc, lay, c, s)
            for t in range(T):
                n = int(lay.n[c, s, t])
                ub = m.ub[n]
                y = int(lay.y[c, s, t])
                if ub <= 0:
                    continue
                if ub < lot:
                    m.ub[n] = 0.0  # the site can never take one lot of this chip
                    continue
                tag = f"{chip.name},{site.name},{sc.years[t]}"
                if lot > 1:
                    z = m.var(f"order[{tag}]", ub=1, integer=True)
                    lay.z[c, s, t] = z
                    m.row(f"min_order[{tag}]", [(n, 1.0), (z, -float(lot))], lo=0.0)
                    m.row(f"order_gate[{tag}]", [(n, 1.0), (z, -ub)], hi=0.0)
                    if y >= 0:
                        m.row(f"family_gate[{tag}]", [(z, 1.0), (y, -1.0)], hi=0.0)
                elif y >= 0:
                    m.row(f"family_gate[{tag}]", [(n, 1.0), (y, -ub)], hi=0.0)


def add_fabric_vars(m: Model, sc: Scenario, lay: Layout) -> None:
    """Cards count toward a kind with a largest job only in a fabric that holds the job."""
    jobs = largest_jobs(sc)
    prev_t = -1
    for (t, k), job in sorted(jobs.items()):
        kind = sc.kinds[k]
        for c, chip in enumerate(sc.chips):
            need = chip.job_cards(job)
            for s, site in enumerate(sc.sites):
                a = int(lay.a[c, s, t, k])
                cap = max_cards_at(sc, c, s)
                if need > chip.scale_out_cards or need > cap:
                    m.ub[a] = 0.0
                    continue
                tag = f"{chip.name},{site.name},{sc.years[t]},{kind.value}"
                f = m.var(f"fabric[{tag}]", ub=1, integer=True)
                lay.f[c, s, t, k] = f
                m.row(f"fabric_holds[{tag}]", [(int(lay.x[c, s, t]), 1.0), (f, -float(need))], lo=0)
                m.row(f"fabric_gate[{tag}]", [(a, 1.0), (f, -float(cap))], hi=0.0)
    # Cards are never retired, so a fabric that holds a job keeps holding it (tightens the LP).
    C, S, T, K = lay.f.shape
    for c in range(C):
        for s in range(S):
            for k in range(K):
                prev = -1
                for t in range(T):
                    f = int(lay.f[c, s, t, k])
                    if f < 0:
                        continue
                    need_now = jobs.get((t, k), 0.0)
                    if prev >= 0 and need_now <= jobs.get((prev_t, k), 0.0):
                        m.row(f"fabric_keeps[{c},{s},{t},{k}]", [(prev, 1.0), (f, -1.0)], hi=0.0)
                    prev, prev_t = f, t
