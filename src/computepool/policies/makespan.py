"""Minimum makespan (Gavel's ``min_total_duration_perf``): the allocation under which every
current job finishes soonest, assuming the allocation holds until then.

Every row must reach ``thr_m(x) >= s_m / T``; with ``z = 1/T`` this is the max-min LP
``max z`` s.t. ``sum_f (T[m,f] / s_m) x[m,f] >= z`` (one LP, no search over ``T``). A second LP keeps
``z`` and spends leftover capacity on the other rows, so nothing idles behind the bottleneck job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from computepool.model.allocation import Allocation
from computepool.policies.base import PolicyInput
from computepool.policies.shares import max_min_lp, throughput_view


def makespan_seconds(inp: PolicyInput, share: np.ndarray, aware: bool = True) -> float:
    """Time for every row to finish under the dense (n, F) ``share``, if it held throughout."""
    thr = (throughput_view(inp, aware) * share).sum(axis=1)
    left = inp.steps_left
    with np.errstate(divide="ignore"):
        t = np.where(left > 0, left / thr, 0.0)
    return float(t.max()) if len(t) else 0.0


@dataclass(frozen=True)
class MinMakespan:
    name: ClassVar[str] = "makespan"
    event_driven: ClassVar[bool] = False
    time_shared: ClassVar[bool] = True
    aware: bool = True
    fill: bool = True

    def allocate(self, inp: PolicyInput) -> Allocation:
        rows = np.nonzero(inp.steps_left > 0)[0]
        if len(rows) == 0:
            return Allocation.empty()
        rates = throughput_view(inp, self.aware)[rows]
        coef = rates / inp.steps_left[rows, None]
        res = max_min_lp(
            coef,
            np.ones(len(rows), dtype=np.int64),
            inp.scale_factor[rows],
            inp.capacity,
            method="ipm",
            fill=self.fill,
        )
        a = Allocation.from_dense(res.share)
        return Allocation(rows[a.rows], a.flavor, a.share)
