"""Interior-point LP solves through Clarabel (Apache-2.0; a homogeneous self-dual embedding
method, the family of ECOS, Gavel's solver).

Used where a policy wants the centre of an LP's optimal face rather than a vertex, on the small
LPs a simulation solves thousands of times: Clarabel answers Gavel's single-GPU LAS LPs (~25
rows x 3 flavors) several times faster than HiGHS' IPX, whose fixed cost per solve dominates at
that size, and returns the same point to ~1e-5 (both stop near the analytic centre of the face).
The LP arrives in the column-wise form of ``policies.lp.LP``: ``row_lo <= A x <= row_hi``,
``col_lo <= x <= col_hi``; every finite bound becomes a row of ``A x + s = b``, ``s >= 0``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

import clarabel
import numpy as np
import scipy.sparse as sp

#: Bounds at or beyond this are infinite (HiGHS' infinity is 1e30 or inf).
BIG = 1e29


@lru_cache(maxsize=256)
def _no_quadratic(n: int) -> sp.csc_matrix:
    """The empty n x n quadratic term of an LP (built once per size; read-only)."""
    return sp.csc_matrix(
        (np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(n + 1, dtype=np.int64)), shape=(n, n)
    )


class CscLists(NamedTuple):
    """A CSC matrix as the attributes Clarabel's Python binding reads (``data``, ``indices``,
    ``indptr``, ``nnz``, ``shape`` and the canonical-format flags), its arrays as plain lists:
    the binding copies them element by element, several times cheaper from lists than from NumPy
    arrays (~35 us of a ~600 us solve of the simulator's LPs). The same numbers, so the same
    solve (``clarabel_solver`` falls back to the scipy matrix if a binding does not take it)."""

    data: list[float]
    indices: list[int]
    indptr: list[int]
    nnz: int
    shape: tuple[int, int]
    has_canonical_format: bool = True
    has_sorted_indices: bool = True

    @classmethod
    def of(cls, m: sp.csc_matrix) -> CscLists:
        return cls(m.data.tolist(), m.indices.tolist(), m.indptr.tolist(), m.nnz, m.shape)


def clarabel_solver(
    P: sp.csc_matrix, q: np.ndarray, A: CscLists, b: np.ndarray, cones: list, settings: Any
) -> Any:
    """``clarabel.DefaultSolver`` on (P, q, A, b), the matrices handed over as ``CscLists``
    (as scipy matrices when the binding refuses those)."""
    try:
        return clarabel.DefaultSolver(CscLists.of(P), q, A, b, cones, settings)
    except (TypeError, AttributeError, ValueError):
        A_sp = sp.csc_matrix((A.data, A.indices, A.indptr), shape=A.shape)
        return clarabel.DefaultSolver(P, q, A_sp, b, cones, settings)


def conic_form(
    col_lo: np.ndarray,
    col_hi: np.ndarray,
    row_lo: np.ndarray,
    row_hi: np.ndarray,
    start: np.ndarray,
    index: np.ndarray,
    value: np.ndarray,
) -> tuple[CscLists, np.ndarray, int]:
    """The LP's constraints as ``A x + s = b``: ``A`` (canonical CSC), ``b`` and how many of
    the first rows are equalities (``s = 0``; the others have ``s >= 0``)."""
    n = len(col_lo)
    cols = np.repeat(np.arange(n), np.diff(start))
    row_eq = (row_lo == row_hi) & (np.abs(row_hi) < BIG)
    col_eq = (col_lo == col_hi) & (np.abs(col_hi) < BIG)
    # Zero-cone rows first (equalities), then the nonnegative ones: A x <= hi, -A x <= -lo,
    # x <= hi, -x <= -lo.
    blocks = [
        (row_eq, 1.0, row_hi, True),
        (col_eq, 1.0, col_hi, False),
        (~row_eq & (row_hi < BIG), 1.0, row_hi, True),
        (~row_eq & (row_lo > -BIG), -1.0, row_lo, True),
        (~col_eq & (col_hi < BIG), 1.0, col_hi, False),
        (~col_eq & (col_lo > -BIG), -1.0, col_lo, False),
    ]
    r_parts, c_parts, v_parts, b_parts = [], [], [], []
    offset = 0
    for sel, sign, bound, is_row in blocks:
        idx = np.flatnonzero(sel)
        k = len(idx)
        if k == 0:
            continue
        b_parts.append(sign * bound[idx])
        if is_row:
            new = np.full(len(sel), -1)
            new[idx] = np.arange(offset, offset + k)
            keep = sel[index]
            r_parts.append(new[index[keep]])
            c_parts.append(cols[keep])
            v_parts.append(sign * value[keep])
        else:
            r_parts.append(np.arange(offset, offset + k))
            c_parts.append(idx)
            v_parts.append(np.full(k, sign))
        offset += k
    rows, cc, vals = np.concatenate(r_parts), np.concatenate(c_parts), np.concatenate(v_parts)
    order = np.lexsort((rows, cc))
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(cc, minlength=n), out=indptr[1:])
    A = CscLists(
        vals[order].tolist(), rows[order].tolist(), indptr.tolist(), len(vals), (offset, n)
    )
    b = np.concatenate(b_parts).astype(np.float64)
    return A, b, int(row_eq.sum() + col_eq.sum())


def solve_interior(
    cost: np.ndarray,
    col_lo: np.ndarray,
    col_hi: np.ndarray,
    row_lo: np.ndarray,
    row_hi: np.ndarray,
    start: np.ndarray,
    index: np.ndarray,
    value: np.ndarray,
    maximize: bool,
) -> tuple[np.ndarray, float] | None:
    """(x, objective) at the optimum, or ``None`` when Clarabel does not report it solved."""
    A, b, n_zero = conic_form(col_lo, col_hi, row_lo, row_hi, start, index, value)
    q = -np.asarray(cost, dtype=np.float64) if maximize else np.asarray(cost, dtype=np.float64)
    got = solve_conic(q, A, b, n_zero)
    if got is None:
        return None
    return got[0], (-got[1] if maximize else got[1])


def solve_conic(
    q: np.ndarray, A: CscLists, b: np.ndarray, n_zero: int
) -> tuple[np.ndarray, float] | None:
    """``min q @ x`` s.t. ``A x + s = b``, the first ``n_zero`` of ``s`` zero and the others
    ``>= 0``: (x, objective), or ``None`` when Clarabel does not report it solved."""
    n, offset = A.shape[1], A.shape[0]
    cones = [clarabel.NonnegativeConeT(offset - n_zero)]
    if n_zero:
        cones.insert(0, clarabel.ZeroConeT(n_zero))
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.max_threads = 1  # its thread pool costs more than it saves on these LPs
    solver = clarabel_solver(_no_quadratic(n), q, A, b, cones, settings)
    sol = solver.solve()
    if sol.status != clarabel.SolverStatus.Solved:
        return None
    return np.asarray(sol.x, dtype=np.float64), sol.obj_val
