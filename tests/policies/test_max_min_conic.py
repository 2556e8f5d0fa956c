"""``max_min_conic`` builds the max-min LP's conic form (and its fill LP's) from the model's
structure: it must give exactly the arrays the generic conversion finds from the bounds, so that
Clarabel solves the same problem to the bit."""

from __future__ import annotations

import numpy as np
import pytest

from computepool.policies.lp import LP
from computepool.policies.shares import max_min_conic, max_min_lp, max_min_model
from computepool.solvers.interior import conic_form


def _generic(lp: LP):
    return conic_form(lp.col_lo, lp.col_hi, lp.row_lo, lp.row_hi, lp.start, lp.index, lp.value)


def _model(seed: int):
    rng = np.random.default_rng(seed)
    G, F = int(rng.integers(1, 30)), int(rng.integers(1, 6))
    coef = rng.uniform(0.1, 3.0, (G, F)) * (rng.random((G, F)) < 0.7)  # some flavors unusable
    count = rng.integers(1, 9, G)
    sf = rng.choice([1, 2, 4, 8], G)
    cap = rng.integers(1, 40, F)
    return max_min_model(coef, count, sf, cap), coef, count


def _same(got, want):
    (A, b, nz), (A2, b2, nz2) = got, want
    assert nz == nz2 and A.shape == A2.shape and A.nnz == A2.nnz
    assert A.indptr == A2.indptr and A.indices == A2.indices
    np.testing.assert_array_equal(np.asarray(A.data), np.asarray(A2.data))
    # to the bit, signed zeros included (-0.0 for the ``-x <= -0`` rows)
    assert np.asarray(A.data).tobytes() == np.asarray(A2.data).tobytes()
    assert b.tobytes() == b2.tobytes()


@pytest.mark.parametrize("seed", range(12))
def test_conic_form_of_the_max_min_lp_and_its_fill_lp_is_the_generic_one(seed):
    m, coef, count = _model(seed)
    _same(max_min_conic(m, m.lp), _generic(m.lp))
    k, t = m.t_col, 0.37
    lo, hi = m.lp.col_lo.copy(), m.lp.col_hi.copy()
    lo[k] = hi[k] = t
    cost2 = np.zeros(k + 1)
    cost2[:k] = count[m.g] * coef[m.g, m.f] / 0.4
    lp2 = LP(cost2, lo, hi, m.lp.row_lo, m.lp.row_hi, m.lp.start, m.lp.index, m.lp.value)
    _same(max_min_conic(m, lp2, t), _generic(lp2))


def test_an_lp_of_another_shape_is_left_to_the_generic_conversion():
    m, _, _ = _model(0)
    k = m.t_col
    hi = m.lp.col_hi.copy()
    hi[0] = 0.5  # a share with an upper bound: not the model's structure
    lp = LP(m.lp.cost, m.lp.col_lo, hi, m.lp.row_lo, m.lp.row_hi, m.lp.start, m.lp.index,
            m.lp.value)  # fmt: skip
    assert max_min_conic(m, lp) is None
    assert max_min_conic(m, m.lp, fixed_t=1.0) is None  # t is not fixed in this LP
    assert k > 0


def test_max_min_lp_through_clarabel_still_solves():
    m, coef, count = _model(3)
    res = max_min_lp(coef, count, np.ones(len(count)), np.full(coef.shape[1], 10), "clarabel",
                     fill=True)  # fmt: skip
    assert res.value > 0 and np.all(res.share >= 0)
