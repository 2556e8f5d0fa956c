"""Weighted max-min fairness over effective throughput: heterogeneity-aware LAS (``las``) and its
agnostic twin (``las-agnostic``), Gavel's ``max_min_fairness_perf`` / ``max_min_fairness``.

``las`` maximises ``min_m  sf_m * thr_m(x) / (w_m * iso_m)`` where ``thr_m(x) = sum_f T[m,f] x[m,f]``
and ``iso_m`` is the row's throughput under the agnostic equal share (so every job's progress is
measured against what it would get from a 1/n slice of the pool). ``las-agnostic`` is the same
LP composed with a flat table (every feasible throughput 1.0, no normalisation).

Rows with the same class, legal flavors, weight and scale factor are interchangeable; the LP has
one row per such group (with its multiplicity in the capacity constraint). The symmetric solution
is optimal for max-min, so this is exact and keeps the LP at a few dozen rows for the Gavel
workloads whatever the number of jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from computepool.model.allocation import Allocation
from computepool.policies.base import PolicyInput
from computepool.policies.shares import (
    expand,
    group_rows,
    isolated_throughput,
    max_min_lp,
    row_weights,
    throughput_view,
)


def size_weights(inp: PolicyInput, exponent: float) -> np.ndarray:
    """Row weights times ``(hours left on the fastest legal flavor) ** -exponent``."""
    w = row_weights(inp)
    if exponent == 0:
        return w
    best = inp.throughput.max(axis=1)
    hours = np.where(best > 0, inp.steps_left / np.maximum(best, 1e-300), np.inf) / 3600.0
    return w * np.maximum(hours, 1e-3) ** -exponent


def max_min_coefficients(inp: PolicyInput, aware: bool, w: np.ndarray) -> np.ndarray:
    """(n, F) objective coefficients of each row's normalised, weighted effective throughput."""
    rates = throughput_view(inp, aware)
    sf = inp.scale_factor.astype(np.float64)
    if not aware:
        return rates * (sf / w)[:, None]
    iso = isolated_throughput(inp, rates)
    norm = np.where(iso > 0, sf / (w * np.maximum(iso, 1e-300)), 0.0)
    return rates * norm[:, None]


@dataclass(frozen=True)
class MaxMinFairness:
    name: ClassVar[str] = "las"
    event_driven: ClassVar[bool] = False
    #: The allocation is a time share the round mechanism spreads over rounds.
    time_shared: ClassVar[bool] = True
    aware: bool = True
    #: ``ipm``: interior point without crossover (centre of the optimal face, like Gavel's ECOS);
    #: ``simplex``: a vertex.
    method: str = "ipm"
    #: Second LP that keeps the minimum and uses capacity the bottleneck rows cannot.
    fill: bool = False
    #: > 0: weight rows by (time left) ** -exponent, tilting max-min towards short jobs (uses
    #: job sizes, like ``ftf``); 0 is plain LAS.
    size_exponent: float = 0.0

    def allocate(self, inp: PolicyInput) -> Allocation:
        if inp.n == 0:
            return Allocation.empty()
        w = size_weights(inp, self.size_exponent)
        coef = max_min_coefficients(inp, self.aware, w)
        groups = group_rows(inp.job_class, inp.job_mask_index, w, inp.scale_factor)
        res = max_min_lp(
            coef[groups.first],
            groups.count,
            inp.scale_factor[groups.first],
            inp.capacity,
            method=self.method,
            fill=self.fill,
        )
        return expand(res.share, groups)


@dataclass(frozen=True)
class MaxMinFairnessAgnostic(MaxMinFairness):
    name: ClassVar[str] = "las-agnostic"
    aware: bool = False
