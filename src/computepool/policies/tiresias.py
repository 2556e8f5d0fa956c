"""Tiresias-style least attained service (2D-LAS, NSDI'19), heterogeneity-agnostic.

Jobs are ranked by attained service (accelerator-seconds), discretised into queues by
``thresholds`` so that jobs are not swapped back and forth every round; within a queue the
earlier arrival goes first. Each round the ranking is filled into the pool greedily, so a new
job (least service) preempts the job with most service. Knows nothing about job durations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from computepool.model.allocation import Allocation
from computepool.policies.base import PolicyInput
from computepool.policies.greedy import greedy_assign

#: Queue thresholds in accelerator-hours (Tiresias uses a few exponentially spaced queues).
DEFAULT_THRESHOLDS_H = (1.0, 10.0, 100.0)


@dataclass(frozen=True)
class Tiresias:
    name: ClassVar[str] = "tiresias"
    #: Decisions change only on arrivals, completions and queue crossings (``next_change``).
    event_driven: ClassVar[bool] = True
    thresholds_hours: tuple[float, ...] = DEFAULT_THRESHOLDS_H
    aware: bool = False

    def _thresholds(self, inp: PolicyInput) -> np.ndarray:
        return np.asarray(self.thresholds_hours) * 3600.0

    @staticmethod
    def _queue(thresholds: np.ndarray, attained: np.ndarray) -> np.ndarray:
        """The queue of each job: a job whose service has reached a threshold is below it
        (one rule for ``allocate`` and ``next_change``, so a crossing that falls exactly on a
        round boundary is acted on then)."""
        return np.searchsorted(thresholds, attained, side="right")

    def allocate(self, inp: PolicyInput) -> Allocation:
        if inp.n == 0:
            return Allocation.empty()
        queue = self._queue(self._thresholds(inp), inp.attained / np.maximum(inp.weight, 1e-9))
        order = np.lexsort((inp.job, inp.arrival, queue))
        return greedy_assign(inp, order, self.aware)

    def next_change(self, inp: PolicyInput, running: np.ndarray) -> float:
        """When the first running job crosses into a lower queue (the ranking may change)."""
        run = running >= 0
        if not run.any():
            return float("inf")
        th = self._thresholds(inp)
        w = np.maximum(inp.weight[run], 1e-9)
        att = inp.attained[run] / w
        q = self._queue(th, att)
        below = q < len(th)
        if not below.any():
            return float("inf")
        gap = (th[q[below]] - att[below]) * w[below] / inp.scale_factor[run][below]
        return inp.now + float(gap.min())
