"""The round gate of a backend whose flavors come and go: flavors no live node runs are taken
out of the round.

The policy sees the pool's capacity; the placer sees cordoned nodes. When every node of a
flavor is lost (a federated cluster lost or not yet registered, every Ray node of the flavor
dead), a policy would still give that flavor to jobs that then cannot be placed: a sticky
policy keeps a requeued job waiting for the flavor it ran on. ``LiveFlavorGate`` wraps the
service's gate (quotas) and answers, per row, only flavors some live node runs; everything
else (tenants, budgets, explanations) is the inner gate's.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import numpy as np

from computepool.model.status import Status


def live_flavors(node_flavor: np.ndarray, n_flavors: int, down: Collection[int]) -> np.ndarray:
    """(F,) bool: flavors with at least one node not in ``down``."""
    up = np.ones(len(node_flavor), dtype=bool)
    up[np.fromiter(down, dtype=np.int64, count=len(down))] = False
    live = np.zeros(n_flavors, dtype=bool)
    live[np.asarray(node_flavor)[up]] = True
    return live


class LiveFlavorGate:
    """``inner`` (the quota gate, or None) narrowed to the flavors ``live_flavors()`` says
    some live node runs; ``why`` and ``source`` explain a job that may use none of them."""

    def __init__(
        self,
        inner: Any,
        live_flavors: Callable[[], np.ndarray],
        why: str = "no live node runs a flavor it may use",
        source: str = "capacity",
    ) -> None:
        self.inner, self.live_flavors, self.why, self.source = inner, live_flavors, why, source

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
            return Status.unschedulable(self.why, self.source)
        why = getattr(self.inner, "explain", None)
        if why is None:
            return Status.unschedulable("held back by the round gate", self.source)
        return why(inp, row)
