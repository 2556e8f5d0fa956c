"""Finish-time fairness (Themis' rho, Gavel's ``finish_time_fairness_perf``): minimise the largest
ratio of a job's expected finish time under the allocation to that under its equal share.

For row ``m`` with ``t_m`` seconds since arrival, ``s_m`` steps left, effective throughput
``thr_m(x)`` and equal-share ("isolated") throughput ``iso_m``::

    rho_m(x) = (t_m + s_m / thr_m(x)) / (c_m + s_m / iso_m)

``c_m`` is Gavel's cumulative isolated time (``reference="gavel"``, the default): the seconds the
work the job has done would have taken at its isolated throughput, accumulated at each allocation
as the steps done since the previous allocation over the isolated throughput *at* that allocation.
A job that waits without progress accrues nothing, so its rho rises while it waits. The scheduler
keeps that clock (``scheduler/isolated_clock.py``) and passes it in ``extras[ISOLATED_DONE]``
(job -> seconds; a job not in it has 0, as in Gavel's first allocation of a job); the policy
itself keeps no state. ``reference="elapsed"`` uses ``c_m = t_m`` (this project's earlier rule).

``method="conic"`` (default) solves Gavel's own second-order cone program through Clarabel
(``solvers/min_max_ratio.py``; Gavel uses ECOS, GPL). Both are interior-point solvers and reach
the same optimum; where the optimal face is large (one job that waited long sets the max) they
stop at different points of it, i.e. give the free rows different shares. With weights the objective is ``max_m w_m * rho_m`` (Gavel leaves its FTF weights
unused).

``method="simplex"``/``"ipm"``: ``max_m rho_m`` is quasi-convex in ``x``: for a fixed ``rho``
the rows need ``thr_m >= r_m(rho) = s_m / (rho * D_m - t_m)`` with ``D_m = c_m + s_m / iso_m``,
which is a max-min LP in ``lam`` (``thr_m >= lam * r_m``); ``rho`` is feasible iff ``lam >= 1``. A
safeguarded secant search on ``log lam(rho)`` finds the smallest feasible ``rho`` in a handful of
LPs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from computepool.model.allocation import Allocation
from computepool.policies.base import PolicyInput
from computepool.policies.lp import LPError, Session, solve
from computepool.policies.shares import (
    MaxMinResult,
    max_min_model,
    row_weights,
    throughput_view,
)
from computepool.solvers.min_max_ratio import min_max_ratio


@dataclass(frozen=True)
class FtfProblem:
    rates: np.ndarray  # (n, F)
    elapsed: np.ndarray  # t_m
    steps_left: np.ndarray  # s_m
    isolated_time: np.ndarray  # D_m
    scale_factor: np.ndarray
    capacity: np.ndarray

    def need(self, rho: float) -> np.ndarray:
        """Steps/s each row needs for ``rho_m <= rho``."""
        return self.steps_left / np.maximum(rho * self.isolated_time - self.elapsed, 1e-9)

    def rho_of(self, thr: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return (self.elapsed + self.steps_left / thr) / self.isolated_time


class LamSolver:
    """``lam(rho)``: the max-min LP ``thr_m >= lam * need_m(rho)``, re-solved from the last basis
    (only the ``lam`` column changes with ``rho``)."""

    def __init__(self, p: FtfProblem, rho: float, method: str) -> None:
        self.p = p
        n = len(p.steps_left)
        self.model = max_min_model(
            p.rates, np.ones(n, dtype=np.int64), p.scale_factor, p.capacity, p.need(rho)
        )
        self.session = Session(self.model.lp, method)
        self.rows = self.model.obj_row0 + np.arange(n)
        self.first = self._result(self.session.first)

    def _result(self, sol) -> MaxMinResult:
        if not sol.optimal:
            raise LPError(f"finish-time-fairness LP: {sol.status}")
        return MaxMinResult(self.model.shares(sol.x), float(sol.x[self.model.t_col]))

    def __call__(self, rho: float) -> MaxMinResult:
        self.session.set_column(self.model.t_col, self.rows, -self.p.need(rho))
        return self._result(self.session.run())


#: ``PolicyInput.extras`` key: job -> seconds its completed work would have taken at its isolated
#: throughput (Gavel's cumulative isolated time), kept by the scheduler across allocations.
ISOLATED_DONE = "ftf_isolated_seconds_done"
REFERENCES = ("gavel", "elapsed")


def isolated_rate(inp: PolicyInput, aware: bool) -> np.ndarray:
    """(n,) each row's throughput under Gavel's ``isolated`` policy: ``capacity_f / (n * sf)`` of
    every (legal) flavor, scaled down so the row's shares sum to at most 1. For single-accelerator
    jobs this is ``isolated_throughput`` (the water-filled equal share); for gangs Gavel does not
    water-fill (an oversubscribed pool's leftover is not redistributed)."""
    rates = throughput_view(inp, aware)
    if inp.n == 0:
        return np.zeros(0)
    cap = np.where(rates > 0, inp.capacity.astype(np.float64)[None, :], 0.0)
    x = cap / (inp.n * inp.scale_factor.astype(np.float64)[:, None])
    x /= np.maximum(x.sum(axis=1), 1.0)[:, None]
    return (rates * x).sum(axis=1)


def isolated_done(inp: PolicyInput, rows: np.ndarray) -> np.ndarray:
    """Gavel's cumulative isolated time of ``rows`` from ``extras[ISOLATED_DONE]`` (0 if absent)."""
    done = inp.extras.get(ISOLATED_DONE) or {}
    return np.array([float(done.get(int(j), 0.0)) for j in inp.job[rows]], dtype=np.float64)


def ftf_problem(
    inp: PolicyInput, aware: bool, rows: np.ndarray, reference: str = "gavel"
) -> FtfProblem:
    w = row_weights(inp)[rows]
    rates = throughput_view(inp, aware)
    iso = isolated_rate(inp, aware)[rows]
    elapsed = np.maximum(inp.now - inp.arrival[rows], 0.0)
    left = inp.steps_left[rows]
    done = elapsed if reference == "elapsed" else isolated_done(inp, rows)
    # Weighted: minimise max_m w_m * rho_m (Gavel leaves its FTF weights unused).
    return FtfProblem(
        rates[rows],
        elapsed,
        left,
        (done + left / iso) / w,
        inp.scale_factor[rows],
        inp.capacity,
    )


def min_max_rho(
    p: FtfProblem,
    method: str = "simplex",
    tol: float = 1e-3,
    max_iter: int = 30,
    centre: bool = True,
) -> tuple[float, np.ndarray]:
    """Smallest feasible max-rho and the (n, F) shares that reach it."""
    lo = float(np.max(p.elapsed / p.isolated_time)) * (1.0 + 1e-9) + 1e-12
    hi = max(1.0, lo * 2.0)
    lam = LamSolver(p, hi, method)
    best = lam.first
    while best.value < 1.0:
        lo, hi = hi, hi * 2.0
        best = lam(hi)
        if hi > 1e9:
            break
    f_hi = math.log(max(best.value, 1e-300))  # >= 0
    f_lo = -math.inf
    for _ in range(max_iter):
        if (hi - lo) <= tol * hi or f_hi <= 1e-4:
            break
        if math.isfinite(f_lo) and f_hi - f_lo > 0:
            mid = hi - f_hi * (hi - lo) / (f_hi - f_lo)
            mid = min(max(mid, lo + 0.05 * (hi - lo)), hi - 0.05 * (hi - lo))
        else:
            mid = 0.5 * (lo + hi)
        res = lam(mid)
        f = math.log(max(res.value, 1e-300))
        if f >= 0:
            hi, f_hi, best = mid, f, res
        else:
            lo, f_lo = mid, f
    if centre:
        # The vertex the simplex ends on starves every row it can; the interior point's centre of
        # the same optimal face shares the slack (as Gavel's ECOS does) and gives lower JCTs.
        n = len(p.steps_left)
        m = max_min_model(
            p.rates, np.ones(n, dtype=np.int64), p.scale_factor, p.capacity, p.need(hi)
        )
        sol = solve(m.lp, method="ipm", crossover=False)
        if sol.optimal and sol.x[m.t_col] >= best.value * (1 - 1e-6):
            return hi, m.shares(sol.x)
    return hi, best.share


@dataclass(frozen=True)
class FinishTimeFairness:
    name: ClassVar[str] = "ftf"
    event_driven: ClassVar[bool] = False
    time_shared: ClassVar[bool] = True
    aware: bool = True
    #: ``conic`` (Gavel's cone program via Clarabel), ``simplex`` or ``ipm`` (LP search).
    method: str = "conic"
    #: ``gavel`` (cumulative isolated time, from the scheduler) or ``elapsed``.
    reference: str = "gavel"

    def __post_init__(self) -> None:
        if self.reference not in REFERENCES:
            raise ValueError(f"ftf reference must be one of {', '.join(REFERENCES)}")
        if self.method not in ("conic", "simplex", "ipm"):
            raise ValueError("ftf method must be one of conic, simplex, ipm")

    @property
    def keeps_isolated_clock(self) -> bool:
        """The scheduler accumulates ``extras[ISOLATED_DONE]`` for this policy."""
        return self.reference == "gavel"

    def isolated_rate(self, inp: PolicyInput) -> np.ndarray:
        return isolated_rate(inp, self.aware)

    def allocate(self, inp: PolicyInput) -> Allocation:
        rows = np.nonzero(inp.steps_left > 0)[0]
        iso = self.isolated_rate(inp)[rows]
        rows = rows[np.isfinite(iso) & (iso > 0)]
        if len(rows) == 0:
            return Allocation.empty()
        p = ftf_problem(inp, self.aware, rows, self.reference)
        share = None
        if self.method == "conic":
            out = min_max_ratio(
                p.rates, p.elapsed, p.steps_left, p.isolated_time, p.scale_factor, p.capacity
            )
            share = None if out is None else out[1]
        if share is None:
            _, share = min_max_rho(p, "simplex" if self.method == "conic" else self.method)
        a = Allocation.from_dense(share)
        return Allocation(rows[a.rows], a.flavor, a.share)


@dataclass(frozen=True)
class FinishTimeFairnessAgnostic(FinishTimeFairness):
    name: ClassVar[str] = "ftf-agnostic"
    aware: bool = False
