"""Gavel's finish-time-fairness program, solved as the second-order cone program Gavel's cvxpy
hands ECOS, here through Clarabel (Apache-2.0, the same interior-point family).

For row ``m`` with ``e_m`` seconds since arrival, ``s_m`` steps left, reference time ``D_m`` and
effective throughput ``a_m(x) = sum_f rate[m, f] x[m, f]``::

    minimise t  s.t.  (e_m + s_m u_m) / D_m <= t,   u_m a_m(x) >= 1   (u_m >= 1 / a_m),
                      x >= 0,  sum_f x[m, f] <= 1,  sum_m sf_m x[m, f] <= capacity_f.

``u_m a_m >= 1`` is the cone ``||(2, a_m - u_m)|| <= a_m + u_m``, the form cvxpy gives
``inv_pos``. When one row's ratio cannot come down to the others' (a job that has waited long
without progress), the optimal face is large and every other row's share is whatever point of it
the solver stops at: Clarabel and ECOS reach the same optimum at different points of the face.
"""

from __future__ import annotations

from dataclasses import dataclass

import clarabel
import numpy as np
import scipy.sparse as sp

from computepool.solvers.interior import _no_quadratic


def _csc(rows: list[np.ndarray], cols: list[np.ndarray], vals: list[np.ndarray], shape):
    return sp.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape
    )


@dataclass(frozen=True)
class ConeProgram:
    """``min q z`` s.t. ``A z + s = b``, ``s`` in ``n_nonneg`` nonnegative rows then ``n_soc``
    3-dimensional second-order cones; ``z = (x[mi, fi], u, t)``."""

    q: np.ndarray
    A: sp.csc_matrix
    b: np.ndarray
    n_nonneg: int
    n_soc: int
    mi: np.ndarray
    fi: np.ndarray
    shape: tuple[int, int]

    def answer(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        share = np.zeros(self.shape)
        share[self.mi, self.fi] = np.clip(z[: len(self.mi)], 0.0, 1.0)
        return float(z[-1]), share


def min_max_ratio_program(
    rates: np.ndarray,
    elapsed: np.ndarray,
    steps_left: np.ndarray,
    reference: np.ndarray,
    scale_factor: np.ndarray,
    capacity: np.ndarray,
) -> ConeProgram | None:
    """The cone program (``None`` when no row may use any flavor)."""
    n, F = rates.shape
    mi, fi = np.nonzero(rates > 0)
    k = len(mi)
    if n == 0 or k == 0:
        return None
    u0, t = k, k + n  # column of u_0 and of t
    N = k + n + 1
    r, c, v, b = [], [], [], []
    row = 0
    # (s_m / D_m) u_m - t <= -e_m / D_m
    ar = np.arange(n)
    r += [row + ar, row + ar]
    c += [u0 + ar, np.full(n, t)]
    v += [steps_left / reference, -np.ones(n)]
    b.append(-elapsed / reference)
    row += n
    # -x <= 0
    r.append(row + np.arange(k))
    c.append(np.arange(k))
    v.append(-np.ones(k))
    b.append(np.zeros(k))
    row += k
    # sum_f x[m, f] <= 1
    r.append(row + mi)
    c.append(np.arange(k))
    v.append(np.ones(k))
    b.append(np.ones(n))
    row += n
    # sum_m sf_m x[m, f] <= capacity_f
    r.append(row + fi)
    c.append(np.arange(k))
    v.append(scale_factor[mi].astype(np.float64))
    b.append(capacity.astype(np.float64))
    row += F
    n_nonneg = row
    # cones, 3 rows per row m: s = (a_m + u_m, 2, a_m - u_m) = b - A z
    base = row + 3 * mi
    rate = rates[mi, fi]
    r += [base, base + 2, row + 3 * ar, row + 3 * ar + 2]
    c += [np.arange(k), np.arange(k), u0 + ar, u0 + ar]
    v += [-rate, -rate, -np.ones(n), np.ones(n)]
    soc_b = np.zeros((n, 3))
    soc_b[:, 1] = 2.0
    b.append(soc_b.ravel())
    row += 3 * n
    q = np.zeros(N)
    q[t] = 1.0
    A = _csc(r, c, v, (row, N))
    return ConeProgram(q, A, np.concatenate(b), n_nonneg, n, mi, fi, (n, F))


def solve_clarabel(p: ConeProgram) -> tuple[float, np.ndarray] | None:
    """(t, shares) at Clarabel's optimum, ``None`` when it does not report it solved."""
    cones = [clarabel.NonnegativeConeT(p.n_nonneg)] + [clarabel.SecondOrderConeT(3)] * p.n_soc
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.max_threads = 1
    N = len(p.q)
    sol = clarabel.DefaultSolver(_no_quadratic(N), p.q, p.A, p.b, cones, settings).solve()
    if sol.status not in (clarabel.SolverStatus.Solved, clarabel.SolverStatus.AlmostSolved):
        return None
    return p.answer(np.asarray(sol.x, dtype=np.float64))


def min_max_ratio(
    rates: np.ndarray,
    elapsed: np.ndarray,
    steps_left: np.ndarray,
    reference: np.ndarray,
    scale_factor: np.ndarray,
    capacity: np.ndarray,
) -> tuple[float, np.ndarray] | None:
    """(smallest max ratio, (n, F) shares) or ``None`` when Clarabel does not report it solved.

    ``rates == 0`` marks a flavor the row may not use (no variable for it)."""
    p = min_max_ratio_program(rates, elapsed, steps_left, reference, scale_factor, capacity)
    return None if p is None else solve_clarabel(p)
