"""Cheapest progress (Gavel's ``ThroughputNormalizedByCostSum_PerfSLOs``): maximise throughput
per unit price, optionally keeping every job on course for its deadline (SLO).

Objective: ``max sum_m sum_f (T[m,f] / best_m) / (sf_m * price_f) * x[m,f]`` where ``best_m`` is
the row's fastest rate (so every job counts in "fractions of its best speed", whatever its step
unit) and ``price_f`` is USD per accelerator-hour plus an optional per-flavor extra
(``extras["flavor_extra_cost_per_hour"]``: energy, carbon or egress priced by the operator), so
region choice by cost or carbon is this same policy with another price vector.

Deadlines: a row with a deadline needs ``thr_m >= s_m / (deadline_m - now)``. The need is a soft
constraint (a slack paid at ``slo_penalty`` times the best objective coefficient per unit of
relative shortfall), so an infeasible set of deadlines still yields the allocation that misses
them least instead of no allocation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from computepool.model.allocation import Allocation
from computepool.policies.base import PolicyInput
from computepool.policies.lp import INF, LP, LPError, csc_from_triplets, solve
from computepool.policies.shares import throughput_view


def flavor_prices(inp: PolicyInput) -> np.ndarray:
    """USD per accelerator-hour per flavor, including the optional extra cost."""
    price = np.asarray(inp.price, dtype=np.float64).copy()
    extra = inp.extras.get("flavor_extra_cost_per_hour")
    if extra is not None:
        extra = np.asarray(extra, dtype=np.float64)
        if extra.shape != price.shape:
            raise ValueError(
                f"flavor_extra_cost_per_hour has {extra.shape[0]} entries, "
                f"the pool has {price.shape[0]} flavors"
            )
        price = price + extra
    if np.any(~np.isfinite(price)) or np.any(price <= 0):
        raise ValueError("every flavor needs a finite price > 0 (USD per accelerator-hour)")
    return price


def slo_need(inp: PolicyInput) -> np.ndarray:
    """Steps/s each row needs to meet its deadline (nan: no deadline; inf: already late)."""
    left = inp.steps_left
    remaining = inp.deadline - inp.now
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(remaining > 0, left / remaining, np.inf)
    return np.where(np.isnan(inp.deadline), np.nan, need)


@dataclass(frozen=True)
class CostPolicy:
    name: ClassVar[str] = "cost"
    event_driven: ClassVar[bool] = False
    time_shared: ClassVar[bool] = True
    aware: bool = True
    slo_penalty: float = 1e3

    def allocate(self, inp: PolicyInput) -> Allocation:
        n, F = inp.n, inp.num_flavors
        if n == 0:
            return Allocation.empty()
        rates = throughput_view(inp, self.aware)
        best = rates.max(axis=1)
        price = flavor_prices(inp)
        sf = inp.scale_factor.astype(np.float64)
        feas = rates > 0
        g, f = np.nonzero(feas)
        k = len(g)
        value = (rates[g, f] / best[g]) / (sf[g] * price[f])
        need = slo_need(inp)
        slo_rows = np.nonzero(np.isfinite(need) | (need == np.inf))[0]
        # Meeting a deadline that is already past or beyond the fastest flavor is impossible:
        # ask for the most the row can get.
        target = np.minimum(np.nan_to_num(need[slo_rows], posinf=np.inf), best[slo_rows])
        s = len(slo_rows)
        rows_t = [g, n + f]
        cols_t = [np.arange(k), np.arange(k)]
        vals_t = [np.ones(k), sf[g]]
        if s:
            pos = np.full(n, -1)
            pos[slo_rows] = np.arange(s)
            sel = pos[g] >= 0
            rows_t += [n + F + pos[g[sel]], n + F + np.arange(s)]
            cols_t += [np.nonzero(sel)[0], k + np.arange(s)]
            vals_t += [rates[g[sel], f[sel]] / target[pos[g[sel]]], np.ones(s)]
        start, index, vals = csc_from_triplets(
            np.concatenate(rows_t), np.concatenate(cols_t), np.concatenate(vals_t), k + s
        )
        penalty = self.slo_penalty * (float(value.max()) if k else 1.0)
        cost = np.concatenate([value, np.full(s, -penalty)])
        row_lo = np.concatenate([np.full(n + F, -INF), np.ones(s)])
        row_hi = np.concatenate([np.ones(n), inp.capacity.astype(np.float64), np.full(s, INF)])
        lp = LP(cost, np.zeros(k + s), np.full(k + s, INF), row_lo, row_hi, start, index, vals)
        sol = solve(lp, method="simplex")
        if not sol.optimal:
            raise LPError(f"cost LP: {sol.status}")
        share = np.zeros((n, F))
        share[g, f] = np.clip(sol.x[:k], 0.0, 1.0)
        return Allocation.from_dense(share)
