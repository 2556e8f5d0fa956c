"""The structured max-min interior point agrees with HiGHS on the same LPs (objective, capacity,
row caps) and the policies route large LPs through it."""

from __future__ import annotations

import numpy as np
import pytest

from computepool.policies import shares
from computepool.policies.shares import max_min_lp, structured_max_min
from computepool.solvers.max_min_ipm import ShareLP, solve_share_lp


def _lp(seed: int, G: int, F: int, gangs: bool, masked: bool):
    rng = np.random.default_rng(seed)
    coef = rng.uniform(0.2, 3.0, (G, F))
    if masked:  # some flavors unusable for some rows, never all
        drop = rng.random((G, F)) < 0.3
        drop[np.arange(G), rng.integers(0, F, G)] = False
        coef[drop] = 0.0
    count = rng.integers(1, 4, G)
    sf = rng.choice([1, 2, 4, 8], G) if gangs else np.ones(G, dtype=np.int64)
    cap = rng.integers(8, 40, F).astype(np.int64)
    return coef, count, sf, cap


def _check_feasible(share, count, sf, cap):
    assert share.min() >= 0.0
    assert share.sum(axis=1).max() <= 1.0 + 1e-6
    used = (share * (count * sf)[:, None]).sum(axis=0)
    assert np.all(used <= cap * (1.0 + 1e-6) + 1e-6)


@pytest.mark.parametrize(
    "seed,G,F,gangs,masked",
    [(0, 300, 3, False, False), (1, 200, 7, True, True), (2, 120, 30, False, True)],
)
def test_max_min_matches_highs(seed, G, F, gangs, masked):
    coef, count, sf, cap = _lp(seed, G, F, gangs, masked)
    ref = max_min_lp(coef, count, sf, cap, method="ipm", fill=False)
    ours = structured_max_min(coef, count, sf, cap, fill=False)
    assert ours is not None
    assert ours.value == pytest.approx(ref.value, rel=1e-5)
    _check_feasible(ours.share, count, sf, cap)
    assert (coef * ours.share).sum(axis=1).min() >= ref.value * (1 - 1e-5)


@pytest.mark.parametrize("seed", [3, 4])
def test_fill_keeps_the_minimum_and_matches_highs_total(seed):
    coef, count, sf, cap = _lp(seed, 250, 5, True, True)
    ref = max_min_lp(coef, count, sf, cap, method="ipm", fill=True)
    ours = structured_max_min(coef, count, sf, cap, fill=True)
    assert ours is not None
    _check_feasible(ours.share, count, sf, cap)
    rows = (coef * ours.share).sum(axis=1)
    assert rows.min() >= ref.value * (1 - 2e-4)
    total = lambda s: float((count[:, None] * coef * s).sum())  # noqa: E731
    # its floor is 1e-4 below the minimum (HiGHS': 1e-6), so its total is at least HiGHS' and
    # only a little more
    assert total(ref.share) * (1 - 1e-6) <= total(ours.share) <= total(ref.share) * 1.01


def test_a_row_without_usable_flavor_is_left_to_highs():
    coef = np.array([[1.0, 0.0], [0.0, 0.0]])
    assert (
        solve_share_lp(ShareLP(coef, np.ones(2), np.ones(2), np.zeros((2, 2)), -1.0, True)) is None
    )


def test_large_lps_take_the_structured_path(monkeypatch):
    coef, count, sf, cap = _lp(5, 400, 3, False, False)
    calls = []
    real = shares.structured_max_min

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(shares, "structured_max_min", spy)
    monkeypatch.setattr(shares, "STRUCTURED_MIN_VARS", 1000)
    max_min_lp(coef, count, sf, cap, method="ipm", fill=True)
    assert calls
    calls.clear()
    max_min_lp(coef[:100], count[:100], sf[:100], cap, method="ipm", fill=True)
    assert not calls
