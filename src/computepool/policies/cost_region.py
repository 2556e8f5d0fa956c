"""Region choice by cost or carbon among the flavors a job may legally use.

``flavor_extra_cost_per_hour`` is the pure function other policies (``cost``) read through
``inp.extras["flavor_extra_cost_per_hour"]``: USD per busy accelerator-hour on top of the
catalog price, from the region's electricity price x TDP x PUE and, optionally, a carbon price
x grid intensity.

``cost-region`` starts jobs in arrival order (like FIFO, no preemption) and gives each the
free flavor where finishing it is cheapest (``objective="cost"``: accelerator price + energy +
carbon price over its remaining run time, plus moving its data there: egress and the
accelerator time spent waiting for the copy) or greenest (``objective="carbon"``: kg CO2 over
its remaining run time). Legality is not its business: infeasible flavors are already masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from computepool.model.allocation import Allocation
from computepool.model.pool import Pool
from computepool.policies.base import PolicyInput, free_capacity, subset_input


def flavor_energy_kwh_per_hour(pool: Pool) -> np.ndarray:
    """kWh drawn by one busy accelerator-hour per flavor (TDP x PUE)."""
    return np.asarray(pool.flavor_power_kw, dtype=float)


def flavor_extra_cost_per_hour(
    pool: Pool, carbon_usd_per_t: float = 0.0, energy: bool = True
) -> np.ndarray:
    """USD per busy accelerator-hour per flavor: energy (price x TDP x PUE) + carbon price."""
    kwh = flavor_energy_kwh_per_hour(pool)
    usd = kwh * pool.flavor_energy_price if energy else np.zeros(len(kwh))
    return usd + carbon_usd_per_t * kwh * pool.flavor_carbon / 1e6


def row_costs(inp: PolicyInput, objective: str, carbon_usd_per_t: float) -> np.ndarray:
    """(n, F) cost of finishing each row on each flavor (inf where infeasible)."""
    thr = inp.throughput
    with np.errstate(divide="ignore", invalid="ignore"):
        hours = np.where(thr > 0, inp.steps_left[:, None] / thr / 3600.0, np.inf)
    accel_hours = hours * inp.scale_factor[:, None]
    pool: Pool | None = inp.extras.get("pool")
    if objective == "carbon":
        if pool is None:
            raise ValueError("cost-region with objective=carbon needs extras['pool']")
        kg_per_h = flavor_energy_kwh_per_hour(pool) * pool.flavor_carbon / 1000.0
        return np.where(thr > 0, accel_hours * kg_per_h[None, :], np.inf)
    extra = inp.extras.get("flavor_extra_cost_per_hour")
    if extra is None:
        extra = (
            flavor_extra_cost_per_hour(pool, carbon_usd_per_t)
            if pool is not None
            else np.zeros(inp.num_flavors)
        )
    per_h = inp.price + np.asarray(extra)
    cost = accel_hours * per_h[None, :]
    usd = inp.extras.get("profile_transfer_usd")
    sec = inp.extras.get("profile_transfer_s")
    if usd is not None and len(usd) > int(inp.job_mask_index.max(initial=0)):
        prof = inp.job_mask_index
        cost = cost + usd[prof]
        cost = cost + sec[prof] / 3600.0 * inp.scale_factor[:, None] * per_h[None, :]
    return np.where(thr > 0, cost, np.inf)


@dataclass(frozen=True)
class CostRegion:
    name: ClassVar[str] = "cost-region"
    event_driven: ClassVar[bool] = True
    objective: Literal["cost", "carbon"] = "cost"
    carbon_usd_per_t: float = 0.0

    def allocate(self, inp: PolicyInput) -> Allocation:
        running = np.nonzero(inp.running >= 0)[0]
        waiting = np.nonzero(inp.running < 0)[0]
        waiting = waiting[np.argsort(inp.arrival[waiting], kind="stable")]
        free = free_capacity(inp).astype(np.int64)
        rows, flavors = [], []
        if len(waiting):
            sub = subset_input(inp, waiting)
            cost = row_costs(sub, self.objective, self.carbon_usd_per_t)
            order = np.argsort(cost, axis=1, kind="stable")
            for k, r in enumerate(waiting):
                need = int(inp.scale_factor[r])
                for f in order[k]:
                    if not np.isfinite(cost[k, f]):
                        break
                    if free[f] >= need:
                        free[f] -= need
                        rows.append(int(r))
                        flavors.append(int(f))
                        break
        n_run = len(running)
        return Allocation(
            np.concatenate([running, np.asarray(rows, dtype=np.int64)]),
            np.concatenate([inp.running[running], np.asarray(flavors, dtype=np.int64)]),
            np.ones(n_run + len(rows)),
            priority=np.concatenate([np.ones(n_run), -np.arange(len(rows), dtype=float)]),
        )
