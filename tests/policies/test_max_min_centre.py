"""``las-centre``'s allocation is the analytic centre of the max-min LP's optimal face (the limit
an interior-point method such as Gavel's ECOS converges to), computed exactly."""

from __future__ import annotations

import numpy as np
import pytest

from computepool.policies import get_policy
from computepool.policies.lp import solve
from computepool.policies.max_min_centre import max_min_centre_lp
from computepool.policies.shares import max_min_model
from computepool.solvers.face_centre import analytic_centre


def _random_lp(seed: int, groups: int = 14, flavors: int = 3):
    """Jobs whose flavors differ by the same factors (as in Gavel's agnostic LP): a degenerate
    LP whose optimal face is more than a point."""
    rng = np.random.default_rng(seed)
    coef = np.outer(rng.uniform(0.2, 3.0, groups), [1.0, 0.6, 0.3][:flavors])
    coef[rng.random((groups, flavors)) < 0.15] = 0.0
    coef[coef.max(axis=1) == 0, 0] = 1.0
    count = rng.integers(1, 5, groups)
    sf = rng.choice([1, 2, 4, 8], groups)
    cap = np.full(flavors, 12.0)
    return coef, count, sf, cap


def _slacks(y, coef, count, sf, cap, t):
    """Every row of Gavel's per-job LP on the face, with its barrier weight (jobs per group)."""
    w = np.concatenate(
        [np.repeat(count, y.shape[1])[(coef > 0).ravel()], count, np.ones(len(cap)), count]
    )
    s = np.concatenate(
        [y[coef > 0], 1.0 - y.sum(axis=1), cap - (count * sf) @ y, (coef * y).sum(axis=1) - t]
    )
    return w, s


def test_matches_the_analytic_centre_computed_by_hand():
    # One job on two flavors of 1 and 3 devices, equally fast: t* = 1 (its share sums to 1), and
    # the face is y0 + y1 = 1. Loose rows: y0 >= 0, y1 >= 0, y0 <= 1, y1 <= 3. Centre: maximise
    # log y + 2 log(1 - y) + log(2 + y): 2 - 4y - 4y^2 = 0, y0 = (sqrt(3) - 1) / 2.
    res = max_min_centre_lp(
        np.array([[1.0, 1.0]]), np.array([1]), np.array([1]), np.array([1.0, 3.0])
    )
    assert res.value == pytest.approx(1.0, abs=1e-7)
    assert res.share[0, 0] == pytest.approx((np.sqrt(3) - 1) / 2, abs=1e-7)
    assert res.share[0].sum() == pytest.approx(1.0, abs=1e-7)


def test_weighted_centre_of_a_segment():
    # maximise 2 log y + log(1 - y) on [0, 1] (y1 = 1 - y0 tight): y0 = 2/3
    a = np.array([[-1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    b = np.array([0.0, 1.0, 1.0])
    y = analytic_centre(
        a, b, np.array([2.0, 1.0, 1.0]), np.array([False, False, True]), np.array([0.5, 0.5])
    )
    assert y == pytest.approx([2 / 3, 1 / 3], abs=1e-9)


def test_a_loose_row_that_cannot_be_loose_is_refused():
    # y <= 0 and y >= 0 both marked loose: no interior, no centre (the caller falls back)
    a = np.array([[1.0], [-1.0]])
    assert analytic_centre(a, np.zeros(2), np.ones(2), np.zeros(2, bool), np.zeros(1)) is None


@pytest.mark.parametrize("seed", range(4))
def test_centre_lies_on_the_optimal_face_and_maximises_the_barrier(seed):
    coef, count, sf, cap = _random_lp(seed)
    res = max_min_centre_lp(coef, count, sf, cap)
    vertex = solve(max_min_model(coef, count, sf, cap).lp, method="simplex")
    y = res.share
    # optimal: every group at least the simplex optimum, and feasible
    assert res.value == pytest.approx(vertex.objective, rel=1e-7)
    assert (coef * y).sum(axis=1).min() >= vertex.objective * (1 - 1e-7)
    assert np.all(y >= 0) and np.all(y.sum(axis=1) <= 1 + 1e-9)
    assert np.all((count * sf) @ y <= cap + 1e-9)
    assert np.all(y[coef == 0] == 0)
    # the face is more than a point here: a vertex of it lies elsewhere
    t = vertex.objective
    other = max_min_model(coef, count, sf, cap).shares(vertex.x)
    assert np.abs(other - y).sum() > 1e-2
    # centre: moving along the face towards the vertex, either way, lowers Gavel's per-job
    # barrier over the rows loose at the centre (rows tight there stay tight on the segment)
    w, s0 = _slacks(y, coef, count, sf, cap, t)
    loose = s0 > 1e-7
    base = float(w[loose] @ np.log(s0[loose]))
    for step in (1e-3, -1e-3):
        _, s1 = _slacks(y + step * (other - y), coef, count, sf, cap, t)
        assert np.all(s1[loose] > 0)
        assert float(w[loose] @ np.log(s1[loose])) < base


def test_symmetric_jobs_get_the_same_shares_and_groups_are_exact():
    coef, count, sf, cap = _random_lp(7, groups=6)
    grouped = max_min_centre_lp(coef, count, sf, cap)
    # one row per job instead of one per group: same centre, identical jobs identical shares
    rows = np.repeat(np.arange(len(count)), count)
    per_job = max_min_centre_lp(coef[rows], np.ones(len(rows), int), sf[rows], cap)
    np.testing.assert_allclose(per_job.share, grouped.share[rows], atol=1e-6)
    for g in range(len(count)):
        same = per_job.share[rows == g]
        np.testing.assert_allclose(same, np.broadcast_to(same[0], same.shape), atol=1e-6)


def test_deterministic():
    coef, count, sf, cap = _random_lp(3)
    a = max_min_centre_lp(coef, count, sf, cap).share
    b = max_min_centre_lp(coef, count, sf, cap).share
    assert np.array_equal(a, b)


def test_las_centre_uses_the_analytic_centre():
    assert get_policy("las-centre").method == "centre"
