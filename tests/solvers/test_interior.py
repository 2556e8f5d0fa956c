"""Clarabel's interior point returns the centre of a degenerate optimal face (the point the LAS
policies are defined by), not a vertex."""

from __future__ import annotations

import numpy as np
import pytest

from computepool.policies.lp import INF, LP, solve, solve_centre
from computepool.solvers.interior import solve_interior


def _face_lp() -> LP:
    # max x0 + x1 + x2  s.t.  x0 + x1 + x2 <= 1,  x2 <= 0.2,  x >= 0; x2 fixed to 0.1 by bounds
    start = np.array([0, 1, 2, 4])
    index = np.array([0, 0, 0, 1])
    value = np.ones(4)
    return LP(
        cost=np.ones(3),
        col_lo=np.array([0.0, 0.0, 0.1]),
        col_hi=np.array([INF, INF, 0.1]),
        row_lo=np.array([-INF, -INF]),
        row_hi=np.array([1.0, 0.2]),
        start=start,
        index=index,
        value=value,
    )


def test_centre_of_a_degenerate_face():
    sol = solve_centre(_face_lp(), engine="clarabel")
    assert sol.optimal
    assert sol.objective == pytest.approx(1.0, abs=1e-7)
    assert sol.x == pytest.approx([0.45, 0.45, 0.1], abs=1e-5)
    # a simplex solve returns a vertex of the same face
    vertex = solve(_face_lp(), method="simplex")
    assert vertex.objective == pytest.approx(1.0) and min(vertex.x[:2]) == pytest.approx(0.0)


def test_infeasible_lp_is_not_reported_solved():
    lp = _face_lp()
    got = solve_interior(
        lp.cost, lp.col_lo, lp.col_hi, np.array([2.0, -INF]), lp.row_hi, lp.start, lp.index,
        lp.value, True,
    )  # fmt: skip
    assert got is None


def test_policies_pick_their_interior_point():
    from computepool.policies import get_policy

    # ``las`` through Clarabel; the Gavel reproductions keep the IPX centre their figures use
    assert get_policy("las").method == "clarabel"
    assert get_policy("las-centre").method == "centre"  # the exact face centre
    assert get_policy("las-agnostic").method == "ipm"


def test_matrices_handed_over_as_lists_give_the_same_solve(monkeypatch):
    import clarabel

    from computepool.solvers import interior

    lp = _face_lp()
    args = (lp.cost, lp.col_lo, lp.col_hi, lp.row_lo, lp.row_hi, lp.start, lp.index, lp.value)
    fast = solve_interior(*args, True)
    real = clarabel.DefaultSolver
    seen = []

    def scipy_only(P, q, A, b, cones, settings):  # a binding that takes scipy matrices only
        seen.append(type(A).__name__)
        if isinstance(A, interior.CscLists):
            raise TypeError("expected a scipy.sparse.csc_matrix")
        return real(P, q, A, b, cones, settings)

    monkeypatch.setattr(interior.clarabel, "DefaultSolver", scipy_only)
    slow = solve_interior(*args, True)
    assert seen == ["CscLists", "csc_matrix"]
    assert fast is not None and slow is not None
    np.testing.assert_array_equal(fast[0], slow[0])  # the same numbers in: the same solve
    assert fast[1] == slow[1]
