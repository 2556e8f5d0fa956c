"""The max-min LP's answer as an interior-point method converges to it: the analytic centre of
its optimal face, computed exactly rather than where a solver happens to stop.

Gavel's LAS (``max_min_fairness_perf``) is a cvxpy problem solved by ECOS: ``max t`` with one
``t <= sum_f c[m, f] x[m, f]`` row per job, ``x >= 0``, ``sum_f x[m, f] <= 1`` and the capacity
rows. The optimum is a face, and an interior point stops near the centre of that face: ECOS,
Clarabel and HiGHS' IPX each at its own tolerance, ~1e-5 apart in the shares — enough to move
the average JCT of Gavel's multi-GPU workload by 5 % (BENCHMARKS.md, Fig. 9). Here the optimum
``t*`` and the rows tight on the whole face come from one interior-point solve (a strictly
complementary pair: a row is tight on the whole face exactly when its dual is non-zero), and the
centre is then found by Newton's method on the face (``solvers.face_centre``).

The barrier is Gavel's per-job one: a group of ``count`` identical jobs contributes ``count``
times its rows' logarithms (the centre is symmetric, so identical jobs get identical shares and
one row per group is exact).
"""

from __future__ import annotations

import clarabel
import numpy as np
import scipy.sparse as sp

from computepool.policies.lp import LPError, solve_centre
from computepool.policies.shares import MaxMinResult, max_min_lp, max_min_model
from computepool.solvers.face_centre import analytic_centre

#: How far (relative) the centre may fall below the solver's minimum before it is refused.
MIN_TOL = 1e-7
#: Dense linear algebra: above this many share variables ``shares.max_min_lp``'s interior
#: point answers instead (the grouped Gavel workloads have a few dozen to a few hundred).
MAX_VARS = 800


def face_rows(
    coef: np.ndarray,
    count: np.ndarray,
    scale_factor: np.ndarray,
    capacity: np.ndarray,
    g: np.ndarray,
    f: np.ndarray,
    t: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The optimal face ``{t = t*}`` as ``A y <= b`` over the share variables ``y[(g, f)]``, with
    each row's barrier weight: ``y >= 0`` (one per variable), ``sum_f y <= 1`` (per group),
    capacity (per flavor), ``sum_f coef y >= t*`` (per group)."""
    G, F = coef.shape
    k = len(g)
    cols = np.arange(k)
    cnt = np.asarray(count, dtype=np.float64)
    a = np.zeros((k + G + F + G, k))
    a[cols, cols] = -1.0
    a[k + g, cols] = 1.0
    a[k + G + f, cols] = cnt[g] * np.asarray(scale_factor, dtype=np.float64)[g]
    a[k + G + F + g, cols] = -coef[g, f]
    b = np.concatenate([np.zeros(k), np.ones(G), np.asarray(capacity, dtype=float), np.full(G, -t)])
    weight = np.concatenate([cnt[g], cnt, np.ones(F), cnt])
    return a, b, weight


def tight_rows(a: np.ndarray, slack: np.ndarray, dual: np.ndarray) -> np.ndarray:
    """Rows tight on the whole optimal face, read from an interior point's strictly
    complementary pair: a row is tight when its (scale-free) slack is below its dual."""
    norm = np.maximum(np.linalg.norm(a, axis=1), 1e-300)
    return np.maximum(slack, 0.0) / norm < np.abs(dual) * norm


def interior_pair(
    a: np.ndarray, b: np.ndarray, t_col: np.ndarray
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray] | None:
    """``max t`` s.t. ``a y + t_col t <= b`` by Clarabel: (y, t, slacks, duals) of its last
    iterate, an interior point near the central path (``None`` when not solved)."""
    k = a.shape[1]
    full = sp.csc_matrix(np.hstack([a, t_col[:, None]]))
    q = np.zeros(k + 1)
    q[k] = -1.0
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.max_threads = 1
    p = sp.csc_matrix((k + 1, k + 1))
    cones = [clarabel.NonnegativeConeT(a.shape[0])]
    sol = clarabel.DefaultSolver(p, q, full, b, cones, settings).solve()
    if sol.status != clarabel.SolverStatus.Solved:
        return None
    x = np.asarray(sol.x, dtype=np.float64)
    return x[:k], float(x[k]), np.asarray(sol.s), np.asarray(sol.z)


def max_min_centre_lp(
    coef: np.ndarray,
    count: np.ndarray,
    scale_factor: np.ndarray,
    capacity: np.ndarray,
    method: str = "centre",
    fill: bool = False,
) -> MaxMinResult:
    """``shares.max_min_lp``'s problem, answered by the analytic centre of its optimal face
    (``method``/``fill`` are accepted for the caller's signature; no fill). Falls back to
    HiGHS' interior point when Clarabel or the Newton step fails."""
    G, F = coef.shape
    if G == 0:
        return MaxMinResult(np.zeros((0, F)), 0.0)
    if int((coef > 0).sum()) > MAX_VARS:
        return max_min_lp(coef, count, scale_factor, capacity, method="ipm")
    m = max_min_model(coef, count, scale_factor, capacity)
    k = m.t_col
    a, b, weight = face_rows(coef, count, scale_factor, capacity, m.g, m.f, 0.0)
    t_col = np.zeros(len(b))
    t_col[k + G + F :] = 1.0  # the rows t <= sum_f coef y
    got = interior_pair(a, b, t_col) if k else None
    if got is not None:
        y0, t, slack, dual = got
        if t > 0:
            b = b - t_col * t
            y = analytic_centre(a, b, weight, tight_rows(a, slack, dual), y0)
            if y is not None and _on_face(a, b, y, t):
                return MaxMinResult(m.shares(np.append(y, t)), t)
    sol = solve_centre(m.lp)
    if not sol.optimal:
        raise LPError(f"max-min LP: {sol.status}")
    return MaxMinResult(m.shares(sol.x), float(sol.x[k]))


def _on_face(a: np.ndarray, b: np.ndarray, y: np.ndarray, t: float) -> bool:
    """Feasible (to rounding) and keeping the optimal minimum."""
    return bool(np.all(a @ y <= b + MIN_TOL * np.maximum(1.0, np.abs(b)) + MIN_TOL * t))
