"""``isolated``: every active job gets a 1/n slice of every flavor it may use (Gavel's
``isolated`` policy), the reference run for finish-time fairness.

Row ``m`` gets ``capacity_f / (n * scale_factor_m)`` of each legal flavor ``f``; a row whose total
exceeds 1 (fewer jobs than accelerators) is scaled down to 1, as in Gavel's ``isolated.py``. (An
older version there divided every row by the largest row total, which over-subscribes the pool
once jobs outnumber accelerators and turns the reference run into a deficit-ordered queue.)
The allocation ignores speed (agnostic): it is the "1/n of the cluster" a job would get on its
own share. ``cpool simulate --ftf-baseline isolated``
runs it on the same workload and divides each job's JCT by its JCT here (Gavel's rho).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from computepool.model.allocation import Allocation
from computepool.policies.base import PolicyInput


def isolated_shares(inp: PolicyInput) -> np.ndarray:
    """(n, F) time shares of the 1/n split."""
    if inp.n == 0:
        return np.zeros((0, inp.num_flavors))
    cap = inp.capacity.astype(np.float64)
    x = inp.feasible * (cap[None, :] / (inp.n * inp.scale_factor.astype(np.float64)[:, None]))
    return x / np.maximum(x.sum(axis=1), 1.0)[:, None]


@dataclass(frozen=True)
class Isolated:
    name: ClassVar[str] = "isolated"
    event_driven: ClassVar[bool] = False
    time_shared: ClassVar[bool] = True
    #: Agnostic: the round mechanism does not prefer fast flavors.
    aware: ClassVar[bool] = False

    def allocate(self, inp: PolicyInput) -> Allocation:
        return Allocation.from_dense(isolated_shares(inp))
