"""Weighted max-min fairness over effective throughput: heterogeneity-aware LAS (``las``) and its
agnostic twin (``las-agnostic``), Gavel's ``max_min_fairness_perf`` / ``max_min_fairness``.

``las`` maximises ``min_m  sf_m * thr_m(x) / (w_m * iso_m)`` where ``thr_m(x) = sum_f T[m,f] x[m,f]``
and ``iso_m`` is the row's throughput if it ran all the time, spread over its flavors in
proportion to capacity (``shares.even_split_throughput``, Gavel's ``ProportionalPolicy``: the
same whatever the number of jobs and the row's scale factor). ``las-agnostic`` is the same
LP composed with a flat table (every feasible throughput 1.0, no normalisation). Its optimal face
is degenerate (only each row's total share is fixed); like Gavel's ECOS we return the face's
centre, each row's total spread over its legal flavors in proportion to capacity, in closed form
when that split fits (``shares.agnostic_centre``), else from the interior-point solve.

``las`` then keeps the optimal minimum and maximises the rows' total normalised throughput (a
second LP, ``fill``): the max-min optimum is a face, and its centre — what ``las-centre``
returns, near the point Gavel's ECOS returns — leaves capacity idle that gangs cannot use in
rounds (Gavel's multi-GPU workload, 2.6 jobs/h, seed 0, Gavel's round order: 34.8 h with the
exact centre, Gavel's own 36.4 h, 24.3 h with fill; single-GPU: the same within 0.3 %).

Rows with the same class, legal flavors, weight and scale factor are interchangeable; the LP has
one row per such group (with its multiplicity in the capacity constraint). The symmetric solution
is optimal for max-min, so this is exact and keeps the LP at a few dozen rows for the Gavel
workloads whatever the number of jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from computepool.model.allocation import Allocation
from computepool.policies.base import PolicyInput
from computepool.policies.max_min_centre import max_min_centre_lp
from computepool.policies.pop import pop_allocate
from computepool.policies.shares import (
    MaxMinResult,
    agnostic_centre,
    even_split_throughput,
    expand,
    group_rows,
    lex_max_min_lp,
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
    iso = even_split_throughput(inp, rates)
    norm = np.where(iso > 0, sf / (w * np.maximum(iso, 1e-300)), 0.0)
    return rates * norm[:, None]


def weighted_aggregate(
    inp: PolicyInput, unit_coef: np.ndarray, w: np.ndarray, num_groups: int, pol: MaxMinFairness
) -> np.ndarray | None:
    """Exact max-min over rows that differ only in weight, with one LP row per (class, legal
    flavors, scale factor): ``None`` when it cannot help or cannot be proved exact.

    Row ``m`` of weight ``w_m`` needs normalised throughput ``w_m * t``; give it ``w_m * y[g]``
    where ``y[g]`` is its group's share per unit weight. The group LP has capacity weight
    ``W_g = sum w`` and, so that no row exceeds share 1, ``sum_f y <= 1 / max w``. It is a
    restriction of the per-row LP, so its optimum is feasible there; if no group's cap is tight
    at that optimum the cap can be dropped (an LP optimum stays optimal when a slack
    constraint is relaxed), and the dropped version is a relaxation of the per-row LP (sum any
    per-row solution over a group): so the allocation is the exact optimum. When a group's cap
    is tight its heaviest quarter becomes rows of their own (exact rows) and the LP is solved
    again, a few times at most; then the caller falls back to the per-row LP.
    """
    own = np.zeros(inp.n, dtype=bool)  # rows with an LP row of their own
    sf = inp.scale_factor
    for _ in range(4):
        agg = np.nonzero(~own)[0]
        wg = group_rows(inp.job_class[agg], inp.job_mask_index[agg], sf[agg])
        G = len(wg.first)
        solo = np.nonzero(own)[0]
        if G + len(solo) >= num_groups:
            return None
        inv = wg.inverse
        wsum = np.bincount(inv, weights=w[agg], minlength=G)
        wmax = np.zeros(G)
        np.maximum.at(wmax, inv, w[agg])
        first = agg[wg.first]
        res = pol.solver()(
            np.vstack([unit_coef[first] / wmax[:, None], unit_coef[solo] / w[solo, None]]),
            np.concatenate([wsum / wmax, np.ones(len(solo))]),
            np.concatenate([sf[first], sf[solo]]),
            inp.capacity,
            method=pol.method,
            fill=pol.fill,
        )
        tight = res.share[:G].sum(axis=1) > 1.0 - 1e-6
        if not tight.any():
            out = np.zeros((inp.n, inp.num_flavors))
            out[agg] = res.share[inv] * (w[agg] / wmax[inv])[:, None]
            out[solo] = res.share[G:]
            return out
        for g in np.nonzero(tight)[0]:
            rows = agg[inv == g]
            heavy = rows[np.argsort(-w[rows], kind="stable")[: max(1, len(rows) // 4)]]
            own[heavy] = True
    return None


@dataclass(frozen=True)
class MaxMinFairness:
    name: ClassVar[str] = "las"
    event_driven: ClassVar[bool] = False
    #: The allocation is a time share the round mechanism spreads over rounds.
    time_shared: ClassVar[bool] = True
    aware: bool = True
    #: ``clarabel``/``ipm``: interior point without crossover (near the centre of the optimal
    #: face, like Gavel's ECOS) through Clarabel (fast on the simulator's small LPs) or HiGHS'
    #: IPX; ``centre``: the exact analytic centre of the face, the limit every interior point
    #: converges to (``policies.max_min_centre``; solvers stop ~1e-5 apart, which moved Gavel's
    #: Fig. 9 by 5 %); ``simplex``: a vertex. ``las`` uses Clarabel, ``las-centre`` the exact
    #: centre.
    method: str = "clarabel"
    #: Second LP that keeps the minimum and uses capacity the bottleneck rows cannot (the
    #: max-min optimum is a face; this picks its point of largest total normalised throughput).
    #: On Gavel's single-GPU workload it gives Gavel's JCTs (29.03 h vs 28.96 h at 5.6 jobs/h);
    #: on its multi-GPU workload the face's centre (``las-centre``, closest to Gavel's ECOS)
    #: wastes gang capacity: 34.8 h against 24.3 h with fill (Gavel 36.4 h).
    fill: bool = True
    #: > 0: weight rows by (time left) ** -exponent, tilting max-min towards short jobs (uses
    #: job sizes, like ``ftf``); 0 is plain LAS.
    size_exponent: float = 0.0
    #: Lexicographic max-min (water-filling, ``shares.lex_max_min_lp``) instead of one max-min LP
    #: (+ ``fill``): a few LPs per allocation.
    lexicographic: bool = False
    #: > 1: POP, ``partitions`` random sub-problems with 1/k of the capacity each, used when the
    #: exact weighted aggregation below does not apply (approximate; see ``policies/pop.py``).
    partitions: int = 1

    def solver(self) -> Callable[..., MaxMinResult]:
        """The LP function behind this policy: lexicographic, the analytic centre of the
        max-min face, or a single max-min LP."""
        if self.lexicographic:
            return lex_max_min_lp
        return max_min_centre_lp if self.method == "centre" else max_min_lp

    def allocate(self, inp: PolicyInput) -> Allocation:
        if inp.n == 0:
            return Allocation.empty()
        w = size_weights(inp, self.size_exponent)
        if not self.aware and self.method in ("ipm", "clarabel"):
            centre = agnostic_centre(inp, w)
            if centre is not None:
                return Allocation.from_dense(centre)
        coef = max_min_coefficients(inp, self.aware, w)
        groups = group_rows(inp.job_class, inp.job_mask_index, w, inp.scale_factor)
        # With one weight for all rows the aggregation's groups are these: nothing to gain.
        if len(groups.first) > 1 and bool((w != w[0]).any()):
            share = weighted_aggregate(inp, coef * w[:, None], w, len(groups.first), self)
            if share is not None:
                return Allocation.from_dense(share)
        if self.partitions > 1:
            exact = replace(self, partitions=1)
            return pop_allocate(exact.allocate, inp, self.partitions)
        res = self.solver()(
            coef[groups.first],
            groups.count,
            inp.scale_factor[groups.first],
            inp.capacity,
            method=self.method,
            fill=self.fill,
        )
        return expand(res.share, groups)


@dataclass(frozen=True)
class MaxMinFairnessCentre(MaxMinFairness):
    """``las`` returning the centre of the max-min optimal face (no fill LP), the point Gavel's
    ECOS converges to, computed exactly: the faithful Gavel reproduction, kept for comparison."""

    name: ClassVar[str] = "las-centre"
    fill: bool = False
    method: str = "centre"


@dataclass(frozen=True)
class MaxMinFairnessLex(MaxMinFairness):
    """``las`` with lexicographic max-min (water-filling): after the minimum, the next-worst
    jobs are raised as far as possible, and so on (Gavel's ``max_min_fairness_water_filling``
    idea, solved as a sequence of LPs)."""

    name: ClassVar[str] = "las-lex"
    lexicographic: bool = True


@dataclass(frozen=True)
class MaxMinFairnessAgnostic(MaxMinFairness):
    name: ClassVar[str] = "las-agnostic"
    aware: bool = False
    method: str = "ipm"
    #: Gavel's agnostic baseline: the face's centre (closed form where it fits).
    fill: bool = False
