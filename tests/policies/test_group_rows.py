"""``group_rows`` groups exactly as ``np.unique(axis=0)`` does (same groups, order, first rows),
which it replaced for speed; the LP's row order, hence its solution, depends on it."""

from __future__ import annotations

import numpy as np

from computepool.policies.shares import group_rows


def test_group_rows_matches_unique_along_rows():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 300))
        keys = [
            rng.integers(0, 5, n),
            rng.integers(0, 2, n),
            rng.choice([0.5, 1.0, 2.0], n),
            rng.choice([1, 2, 4, 8], n),
        ][: int(rng.integers(1, 5))]
        got = group_rows(*keys)
        stacked = np.stack([np.asarray(k, dtype=np.float64) for k in keys], axis=1)
        _, first, inverse, count = np.unique(
            stacked, axis=0, return_index=True, return_inverse=True, return_counts=True
        )
        assert np.array_equal(got.first, first)
        assert np.array_equal(got.inverse, inverse.reshape(-1))
        assert np.array_equal(got.count, count)


def test_group_rows_of_nothing():
    g = group_rows(np.zeros(0), np.zeros(0))
    assert len(g.first) == 0 and len(g.inverse) == 0
