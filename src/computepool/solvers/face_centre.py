"""The analytic centre of a polytope's face, by damped Newton on the log barrier.

An interior-point LP solver (ECOS, Clarabel, HiGHS' IPX) follows the central path, whose limit is
the analytic centre of the optimal face: the point of the face that maximises the (weighted) sum
of the logarithms of the slacks of the inequalities that are not tight everywhere on it. Each
solver stops at its own tolerance somewhere near that limit, so on a degenerate LP two solvers
return points that differ in the last digits. This module computes the limit itself, so the
answer depends on the LP and not on a solver's stopping rule.

The face is given as ``A y <= b`` with a mask of the rows that are tight on the whole face
(equalities there); the rest must be strictly satisfied at ``start``. Dense linear algebra:
meant for the few-hundred-variable LPs of a grouped max-min allocation.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

#: Stop when half the squared Newton decrement (the barrier's predicted gain) is below this.
NEWTON_TOL = 1e-13
MAX_NEWTON_STEPS = 80
#: A pivot below this (rows normalised to unit length) counts as zero: a dependent row.
PIVOT_TOL = 1e-9


def _affine_set(a_tight: np.ndarray, b_tight: np.ndarray, start: np.ndarray):
    """(a point of ``{a_tight y = b_tight}`` next to ``start``, a basis of its null space).

    Gauss-Jordan elimination with partial pivoting on the row-normalised system: the free
    variables keep their value at ``start`` and the pivot variables absorb the residual (an
    interior point satisfies the tight rows to its tolerance, so the move is that small). No
    LAPACK decomposition: on matrices this small, threaded BLAS competing for busy cores made
    an SVD take a hundred times longer than this loop."""
    n = len(start)
    norm = np.linalg.norm(a_tight, axis=1)
    keep = norm > 0
    m = np.hstack([a_tight[keep], b_tight[keep, None]]) / norm[keep, None]
    pivots: list[int] = []
    row = 0
    for col in range(n):
        if row == len(m):
            break
        best = row + int(np.argmax(np.abs(m[row:, col])))
        if abs(m[best, col]) <= PIVOT_TOL:
            continue
        m[[row, best]] = m[[best, row]]
        m[row] /= m[row, col]
        others = np.abs(m[:, col]) > 0
        others[row] = False
        m[others] -= np.outer(m[others, col], m[row])
        pivots.append(col)
        row += 1
    free = np.setdiff1d(np.arange(n), pivots)
    reduced = m[: len(pivots)]
    point = start.astype(np.float64).copy()
    point[pivots] = reduced[:, n] - reduced[:, free] @ start[free]
    null = np.zeros((n, len(free)))
    null[free, np.arange(len(free))] = 1.0
    null[np.asarray(pivots, dtype=np.int64)] = -reduced[:, free]
    return point, null


def _barrier(slack: np.ndarray, weight: np.ndarray) -> float:
    return float(weight @ np.log(slack))


def analytic_centre(
    a: np.ndarray,
    b: np.ndarray,
    weight: np.ndarray,
    tight: np.ndarray,
    start: np.ndarray,
) -> np.ndarray | None:
    """``argmax sum_{i loose} weight[i] * log(b[i] - a[i] @ y)`` over ``a[tight] y = b[tight]``.

    ``start`` needs every loose slack positive after it is moved onto the tight rows' affine set
    (a point an interior-point solver returned is such a start). ``None`` when that fails or the
    barrier is unbounded on the face (a row marked loose that cannot be, or a face that is not
    bounded); the caller then keeps its solver's point.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    tight = np.asarray(tight, dtype=bool)
    start = np.asarray(start, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    # Tight rows with one non-zero (a bound, e.g. a share held at 0) fix their variable: take it
    # out first, so the elimination below only sees the rows that couple variables.
    nz = a != 0
    single = tight & (nz.sum(axis=1) == 1)
    fixed_col = np.argmax(nz[single], axis=1)
    value = start.copy()
    value[fixed_col] = b[single] / a[single, fixed_col]
    free = np.ones(len(start), dtype=bool)
    free[fixed_col] = False
    keep = ~single
    got = _centre_free(
        a[keep][:, free],
        b[keep] - a[keep][:, ~free] @ value[~free],
        weight[keep],
        tight[keep],
        start[free],
    )
    if got is None:
        return None
    value[free] = got
    return value


def _centre_free(
    a: np.ndarray, b: np.ndarray, weight: np.ndarray, tight: np.ndarray, start: np.ndarray
) -> np.ndarray | None:
    """``analytic_centre`` once the fixed variables are gone."""
    loose = ~tight
    a_l, b_l, w_l = a[loose], b[loose], weight[loose]
    if a.shape[1] == 0:
        return start if np.all(b_l > 0) else None
    point, null = _affine_set(a[tight], b[tight], start)
    if null.shape[1] == 0:
        return point if np.all(b_l - a_l @ point > 0) else None
    slack = b_l - a_l @ point
    if np.any(slack <= 0):
        return None
    # Sparse: the face's rows have a few non-zeros each (bounds, one job's flavors) but for
    # the capacity rows; dense products made a 250-variable face take ~1 s per LP.
    red = sp.csr_matrix(sp.csr_matrix(a_l) @ sp.csr_matrix(null))
    u = np.zeros(null.shape[1])
    value = _barrier(slack, w_l)
    for _ in range(MAX_NEWTON_STEPS):
        grad = -(red.T @ (w_l / slack))
        hess = (red.T @ sp.diags(w_l / slack**2) @ red).tocsc()
        try:
            step = np.asarray(spla.spsolve(hess, grad), dtype=np.float64)
        except RuntimeError:
            return None
        decrement = float(grad @ step)
        if not np.isfinite(decrement) or decrement < 0:
            return None
        if decrement / 2 < NEWTON_TOL:
            return point + null @ u
        move = red @ step
        alpha = 1.0
        shrink = move > 0
        if shrink.any():  # stay strictly inside: at most 99 % of the way to the nearest wall
            alpha = min(1.0, 0.99 * float(np.min(slack[shrink] / move[shrink])))
        while alpha > 1e-12:
            trial = slack - alpha * move
            if np.all(trial > 0):
                new = _barrier(trial, w_l)
                if new >= value + 0.25 * alpha * decrement:
                    break
            alpha *= 0.5
        else:
            return point + null @ u  # no progress possible: as centred as doubles allow
        u = u + alpha * step
        slack = b_l - a_l @ (point + null @ u)
        value = _barrier(slack, w_l)
    return None
