"""FIFO: jobs hold accelerators in arrival order.

``fifo`` is heterogeneity-aware (Gavel's ``fifo_perf``): whenever the job set changes, jobs are
visited in arrival order and each takes the fastest flavor that still has room, so an earlier
job moves to a faster flavor when one frees up (a later job never displaces an earlier one).
``fifo-agnostic`` (Gavel's ``fifo``) ignores speed, spreads jobs over the feasible flavors and
never preempts: a started job runs to completion where it started. ``fifo-sticky`` is aware
when a job starts (fastest flavor with room) but never moves a running job: the live pool's
default, where moving a job means killing and restarting its processes.
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
    #: Move earlier jobs to faster flavors when those free up (Gavel's ``fifo_perf``).
    migrate: bool = True

    def allocate(self, inp: PolicyInput) -> Allocation:
        if self.aware and self.migrate:
            order = np.lexsort((inp.job, inp.arrival))
            return greedy_assign(inp, order, aware=True, keep_running=False)
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


@dataclass(frozen=True)
class FifoSticky(Fifo):
    name: ClassVar[str] = "fifo-sticky"
    migrate: bool = False
