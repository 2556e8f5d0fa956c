"""Heterogeneity-aware shortest remaining time first (``srpt``).

Every round, rows are ranked by the time they still need on their fastest legal flavor
(``steps_left / max_f T[m, f]``, shortest first, divided by the row's weight) and each takes the
fastest flavor that still has room. It needs job sizes (as ``ftf`` and ``makespan`` do) and
minimises the average JCT far below the fairness policies; the price is that long jobs wait
while short ones keep arriving (watch p99 and the mean rho).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from computepool.model.allocation import Allocation
from computepool.policies.base import PolicyInput
from computepool.policies.greedy import greedy_assign
from computepool.policies.shares import row_weights


def remaining_seconds(inp: PolicyInput) -> np.ndarray:
    """Time each row still needs on its fastest legal flavor (inf if it has none)."""
    best = inp.throughput.max(axis=1) if inp.n else np.zeros(0)
    with np.errstate(divide="ignore"):
        return np.where(best > 0, inp.steps_left / best, np.inf)


@dataclass(frozen=True)
class ShortestRemainingFirst:
    name: ClassVar[str] = "srpt"
    event_driven: ClassVar[bool] = False
    aware: bool = True

    def allocate(self, inp: PolicyInput) -> Allocation:
        if inp.n == 0:
            return Allocation.empty()
        key = remaining_seconds(inp) / row_weights(inp)
        order = np.lexsort((inp.job, inp.arrival, key))
        return greedy_assign(inp, order, aware=self.aware, keep_running=False)
