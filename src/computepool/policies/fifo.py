"""FIFO: jobs start in arrival order and, once started, run to completion (no preemption).

``fifo`` is heterogeneity-aware: a starting job takes the fastest flavor with room.
``fifo-agnostic`` ignores speed and spreads jobs over the feasible flavors.
A job that does not fit is passed over (not head-of-line blocking), as in Gavel's FIFO.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from computepool.model.allocation import Allocation
from computepool.policies.base import PolicyInput, free_capacity
from computepool.policies.greedy import greedy_assign


@dataclass(frozen=True)
class Fifo:
    name: ClassVar[str] = "fifo"
    event_driven: ClassVar[bool] = True
    aware: bool = True

    def allocate(self, inp: PolicyInput) -> Allocation:
        running = np.nonzero(inp.running >= 0)[0]
        waiting = np.nonzero(inp.running < 0)[0]
        waiting = waiting[np.argsort(inp.arrival[waiting], kind="stable")]
        started = greedy_assign(inp, waiting, self.aware, free=free_capacity(inp))
        n_run = len(running)
        return Allocation(
            np.concatenate([running, started.rows]),
            np.concatenate([inp.running[running].astype(np.int64), started.flavor]),
            np.ones(n_run + len(started)),
            priority=np.concatenate([np.full(n_run, 1.0), started.priority]),
        )


@dataclass(frozen=True)
class FifoAgnostic(Fifo):
    name: ClassVar[str] = "fifo-agnostic"
    aware: bool = False
