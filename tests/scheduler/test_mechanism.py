import numpy as np

from computepool.model.allocation import Allocation
from computepool.scheduler.mechanism import assign_round


def test_fits_all_fast_path():
    alloc = Allocation(np.array([0, 1]), np.array([0, 1]), np.ones(2))
    out = assign_round(
        alloc, np.array([2, 2]), np.array([2, 2]), np.array([-1, -1]), np.zeros((2, 2)), 0.0
    )
    assert out.tolist() == [0, 1]


def test_time_shares_serve_least_served_first():
    # two jobs want half of one accelerator each; job 0 already got its time
    alloc = Allocation(np.array([0, 1]), np.array([0, 0]), np.array([0.5, 0.5]))
    received = np.array([[100.0], [0.0]])
    out = assign_round(alloc, np.array([1, 1]), np.array([1]), np.array([0, -1]), received, 100.0)
    assert out.tolist() == [-1, 0]


def test_row_never_gets_two_flavors_and_capacity_respected():
    rng = np.random.default_rng(3)
    n, F = 40, 3
    shares = rng.random((n, F))
    shares /= shares.sum(axis=1, keepdims=True)
    alloc = Allocation.from_dense(shares)
    sf = rng.choice([1, 2, 4], size=n)
    cap = np.array([8, 8, 8])
    out = assign_round(alloc, sf, cap, np.full(n, -1), np.zeros((n, F)), 0.0)
    used = np.bincount(out[out >= 0], weights=sf[out >= 0], minlength=F)
    assert np.all(used <= cap)
