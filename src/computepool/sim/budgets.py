"""Tenant budgets in a simulation: what each tenant has spent so far, from the scheduler's
job history, turned into the ``QuotaGate``'s over-budget set after every round (the live
pool does the same from its ledger)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from computepool.admission.quota import QuotaGate, over_budget
from computepool.model.tenant import Tenant
from computepool.model.workload import Workload


class BudgetWatch:
    def __init__(self, workload: Workload, tenants: Mapping[str, Tenant], gate: QuotaGate) -> None:
        self.workload, self.tenants, self.gate = workload, dict(tenants), gate
        self.budgeted = any(
            t.budget_accel_hours is not None or t.budget_usd is not None for t in tenants.values()
        )
        self.over: frozenset[str] = frozenset()

    def spent(
        self, accel_seconds: np.ndarray, cost_usd: np.ndarray
    ) -> dict[str, tuple[float, float]]:
        """(accelerator-hours, USD) per tenant name of the jobs so far."""
        n = min(len(accel_seconds), len(self.workload))
        names = self.workload.tenants
        t = self.workload.tenant[:n]
        hours = np.bincount(t, weights=accel_seconds[:n], minlength=len(names)) / 3600.0
        usd = np.bincount(t, weights=cost_usd[:n], minlength=len(names))
        return {name: (float(hours[i]), float(usd[i])) for i, name in enumerate(names)}

    def check(self, history) -> None:
        """Update the gate when the set of tenants over budget changed."""
        if not self.budgeted:
            return
        over = frozenset(
            over_budget(self.spent(history.accel_seconds, history.cost_usd), self.tenants.values())
        )
        if over != self.over:
            self.over = over
            self.gate.update(self.tenants, over)
