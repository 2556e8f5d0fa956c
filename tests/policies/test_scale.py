"""Exact shortcuts and POP for big LAS instances; the agnostic centre; the isolated policy."""

import numpy as np
import pytest

from computepool.policies import get_policy
from computepool.policies.isolated import isolated_shares
from computepool.policies.max_min import max_min_coefficients
from computepool.policies.pop import partitions
from computepool.policies.shares import max_min_lp
from tests.policies.inputs import policy_input


def _case(seed: int, n: int, C: int, F: int, cap: int, unique: bool = False):
    rng = np.random.default_rng(seed)
    cls = rng.integers(0, C, n)
    cls[:C] = np.arange(C)
    rates = rng.uniform(0.2, 3.0, (C, F))[cls]
    if unique:
        rates = rates * rng.uniform(0.8, 1.2, (n, F))
        cls = np.arange(n)
    w = rng.uniform(0.5, 2.0, n)
    return policy_input(rates, np.full(F, cap), classes=cls, weight=w)


def _min_norm(inp, alloc) -> float:
    coef = max_min_coefficients(inp, True, inp.weight)
    return float((coef * alloc.dense(inp.n, inp.num_flavors)).sum(axis=1).min())


def _exact(inp) -> float:
    coef = max_min_coefficients(inp, True, inp.weight)
    return max_min_lp(coef, np.ones(inp.n, dtype=np.int64), inp.scale_factor, inp.capacity).value


@pytest.mark.parametrize(("n", "cap"), [(300, 20), (300, 60), (60, 40)])
def test_weight_aggregation_is_the_per_row_optimum(n, cap):
    # over-subscribed (every share < 1), tight, and lightly loaded (caps bind: fallback)
    inp = _case(1, n, 5, 3, cap)
    alloc = get_policy("las").allocate(inp)
    x = alloc.dense(inp.n, inp.num_flavors)
    assert np.all(x.sum(axis=1) <= 1 + 1e-6)
    assert np.all(x.sum(axis=0) <= inp.capacity + 1e-6)
    assert _min_norm(inp, alloc) == pytest.approx(_exact(inp), rel=1e-4)


def test_pop_partitions_cover_every_row_once():
    parts = partitions(103, 8, seed=3)
    assert len(parts) == 8
    assert sorted(np.concatenate(parts).tolist()) == list(range(103))
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1


@pytest.mark.parametrize("seed", range(3))
def test_pop_gap_is_bounded_on_random_instances(seed):
    inp = _case(seed, 400, 6, 3, 30, unique=True)
    exact = _exact(inp)
    pop = _min_norm(inp, get_policy("las", partitions=4).allocate(inp))
    assert pop <= exact * (1 + 1e-4)
    assert pop >= exact * 0.95  # POP reports ~1.5 % on Gavel's workloads


def test_agnostic_is_the_centre_of_its_optimal_face():
    # 6 equal jobs on 2 + 1 accelerators: total share 1/2 each, split 2:1 like the capacity
    inp = policy_input(np.tile([[4.0, 1.0]], (6, 1)), [2, 1], classes=np.zeros(6, dtype=int))
    x = get_policy("las-agnostic").allocate(inp).dense(6, 2)
    np.testing.assert_allclose(x, np.tile([[1 / 3, 1 / 6]], (6, 1)), atol=1e-9)


def test_agnostic_falls_back_to_the_lp_when_the_split_does_not_fit():
    # job 0 may only use f0; the capacity-proportional split of the others would crowd f0
    mask = np.array([[True, False], [True, True], [True, True]])
    inp = policy_input(np.ones((3, 2)), [1, 1], mask=mask)
    x = get_policy("las-agnostic").allocate(inp).dense(3, 2)
    assert np.all(x.sum(axis=0) <= 1 + 1e-6)
    np.testing.assert_allclose(x.sum(axis=1), 2 / 3, atol=1e-4)


def test_isolated_gives_each_job_one_nth_of_each_flavor():
    # 4 jobs, 4 + 2 accelerators: 1 and 1/2 of a device each -> row total 1.5, scaled to 1;
    # the 2-accelerator job gets half of that per device: total 0.75, kept
    inp = policy_input(np.ones((4, 2)), [4, 2], sf=[1, 1, 1, 2])
    x = isolated_shares(inp)
    np.testing.assert_allclose(x[0], [2 / 3, 1 / 3])
    np.testing.assert_allclose(x[3], [1 / 2, 1 / 4])
    # more jobs than accelerators: exactly 1/n of each flavor, never over-subscribed
    inp = policy_input(np.ones((12, 2)), [4, 2])
    x = isolated_shares(inp)
    np.testing.assert_allclose(x[0], [4 / 12, 2 / 12])
    np.testing.assert_allclose(x.sum(axis=0), [4, 2])
