"""The round gate of a federated pool: flavors no live cluster runs are taken out of the round.

The policy sees the pool's capacity; the placer sees cordoned nodes. When a whole cluster is
lost (or not yet registered), a policy would still give its flavors to jobs that then cannot be
placed. ``ClusterGate`` wraps the service's gate (quotas) and answers, per row, only flavors
that some live cluster runs; everything else (tenants, budgets, explanations) is the inner
gate's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from computepool.model.status import Status


class ClusterGate:
    def __init__(self, inner: Any, live_flavors: Callable[[], np.ndarray]) -> None:
        self.inner, self.live_flavors = inner, live_flavors

    def __getattr__(self, name: str) -> Any:  # update, table_for, ...: the quota gate's
        return getattr(self.inner, name)

    def eligible(self, inp: Any) -> np.ndarray:
        live = np.asarray(self.live_flavors(), dtype=bool)
        n = len(inp.job)
        ok = np.asarray(self.inner.eligible(inp), dtype=bool) if self.inner else np.ones(n, bool)
        if ok.ndim == 1:
            ok = np.repeat(ok[:, None], len(live), axis=1)
        return ok & live[None, :]

    def explain(self, inp: Any, row: int) -> Status:
        live = np.asarray(self.live_flavors(), dtype=bool)
        feasible = np.asarray(inp.feasible[row], dtype=bool) if hasattr(inp, "feasible") else None
        if feasible is not None and not (feasible & live).any():
            return Status.unschedulable(
                "no live cluster runs a flavor it may use (its clusters are lost or not "
                "registered yet)",
                "federation",
            )
        why = getattr(self.inner, "explain", None)
        if why is None:
            return Status.unschedulable("held back by the round gate", "federation")
        return why(inp, row)
