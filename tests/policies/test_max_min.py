import numpy as np
import pytest

from computepool.policies import get_policy
from computepool.policies.max_min import max_min_coefficients
from computepool.policies.shares import equal_share_fraction
from tests.policies.inputs import policy_input, shares


def _norm_thr(inp, x):
    thr = (inp.throughput * x).sum(axis=1)
    return thr


def test_each_job_gets_the_flavor_it_is_fast_on():
    # A is 2x faster on f0, B on f1; equal share gives each 1.5 steps/s; the optimum gives 2.
    inp = policy_input([[2.0, 1.0], [1.0, 2.0]], [1, 1])
    x = shares(get_policy("las").allocate(inp), 2, 2)
    np.testing.assert_allclose(x, [[1, 0], [0, 1]], atol=1e-4)


def test_hand_computed_heterogeneous_optimum():
    # A: [2, 1], B: [1, 1] on one accelerator of each flavor. Equal share: iso_A = 1.5, iso_B = 1.
    # Max-min of thr/iso: B can never exceed 1 = its iso, so t* = 1 with B holding one whole
    # flavor-worth of time and A the rest: A gets f0 whole (thr 2) when B takes f1.
    inp = policy_input([[2.0, 1.0], [1.0, 1.0]], [1, 1])
    x = shares(get_policy("las", fill=True).allocate(inp), 2, 2)
    thr = _norm_thr(inp, x)
    assert thr[1] == pytest.approx(1.0, abs=1e-4)
    assert thr[0] == pytest.approx(2.0, abs=1e-4)


def test_equal_jobs_get_equal_normalised_throughput():
    rates = np.tile([[3.0, 1.0, 0.5]], (7, 1))
    inp = policy_input(rates, [2, 2, 2], classes=np.zeros(7, dtype=int))
    x = shares(get_policy("las").allocate(inp), 7, 3)
    thr = _norm_thr(inp, x)
    np.testing.assert_allclose(thr, thr[0], rtol=1e-5)
    assert thr[0] > 0


def test_weights_shift_shares_proportionally():
    inp = policy_input([[1.0], [1.0]], [1], weight=[1.0, 2.0])
    x = shares(get_policy("las").allocate(inp), 2, 1)
    np.testing.assert_allclose(x[:, 0], [1 / 3, 2 / 3], atol=1e-4)


def test_tenant_weights_compose_with_job_weights():
    inp = policy_input(
        [[1.0], [1.0], [1.0]],
        [1],
        tenant=[0, 1, 1],
        extras={"tenant_weight": np.array([2.0, 1.0])},
    )
    x = shares(get_policy("las").allocate(inp), 3, 1)
    np.testing.assert_allclose(x[:, 0], [0.5, 0.25, 0.25], atol=1e-4)


def test_infeasible_flavors_get_nothing_and_capacity_holds():
    rng = np.random.default_rng(1)
    n, F = 30, 4
    rates = rng.uniform(0.1, 5.0, (n, F))
    mask = rng.random((n, F)) > 0.3
    mask[:, 0] = True
    sf = rng.choice([1, 2, 4], n)
    cap = np.array([8, 4, 6, 8])
    for name in ("las", "las-agnostic", "ftf", "makespan", "cost"):
        inp = policy_input(rates, cap, sf=sf, mask=mask, steps_left=rng.uniform(1e3, 1e5, n))
        x = shares(get_policy(name).allocate(inp), n, F)
        assert np.all(x[~mask] == 0), name
        assert np.all(x.sum(axis=1) <= 1 + 1e-6), name
        assert np.all((x * sf[:, None]).sum(axis=0) <= cap + 1e-6), name


def test_agnostic_ignores_speed():
    # Three jobs, one 10x faster: agnostic max-min still splits time equally.
    inp = policy_input([[10.0], [1.0], [1.0]], [1])
    x = shares(get_policy("las-agnostic").allocate(inp), 3, 1)
    np.testing.assert_allclose(x[:, 0], 1 / 3, atol=1e-4)


def test_scale_factor_counts_in_capacity():
    # A 2-GPU job and a 1-GPU job on 2 GPUs, same per-GPU speed: Gavel's objective multiplies by
    # the scale factor, so both reach the same normalised level.
    inp = policy_input([[2.0], [1.0]], [2], sf=[2, 1])
    x = shares(get_policy("las").allocate(inp), 2, 1)
    assert (x[:, 0] * [2, 1]).sum() <= 2 + 1e-6
    assert x[0, 0] > 0 and x[1, 0] > 0


@pytest.mark.parametrize("name", ["las", "las-centre"])
def test_gang_share_is_normalised_as_in_gavel(name):
    # Eight 1-GPU jobs and one 8-GPU job of one class on 8 GPUs (oversubscribed). Gavel
    # normalises by the throughput under an even split of capacity, the same for every scale
    # factor: every row reaches sf * x = t, so 8 t + 8 (t / 8) = 8: t = 8/9, the gang's share
    # 1/9. Normalising by the water-filled equal share (1/sf for the gang) gave it 1/65 and
    # starved 8-GPU jobs on Gavel's multi-GPU workload.
    inp = policy_input(np.full((9, 1), 2.0), [8], sf=[1] * 8 + [8], classes=np.zeros(9, int))
    x = shares(get_policy(name).allocate(inp), 9, 1)
    np.testing.assert_allclose(x[:8, 0], 8 / 9, atol=1e-4)
    assert x[8, 0] == pytest.approx(1 / 9, abs=1e-4)


def test_equal_share_water_filling():
    # 3 single-GPU jobs + one 4-GPU job on 4 GPUs: lam fills the pool, the 4-GPU job saturates last
    x = equal_share_fraction(np.ones(4), np.array([1, 1, 1, 4]), 4.0)
    assert (x * [1, 1, 1, 4]).sum() == pytest.approx(4.0)
    np.testing.assert_allclose(x[:3], x[0])
    assert equal_share_fraction(np.ones(2), np.array([1, 1]), 8.0).tolist() == [1.0, 1.0]


def test_bad_weight_is_refused():
    inp = policy_input([[1.0]], [1], weight=[0.0])
    with pytest.raises(ValueError, match="weights"):
        get_policy("las").allocate(inp)


@pytest.mark.parametrize("seed", range(4))
def test_fill_keeps_the_minimum_and_uses_more_of_the_face(seed):
    # las (fill) and las-centre have the same optimal minimum; fill's total is at least the
    # centre's, and it is what the default las returns.
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0.2, 3.0, (12, 3))
    sf = rng.choice([1, 2, 4, 8], 12)
    inp = policy_input(rates, [8, 8, 8], sf=sf)
    coef = max_min_coefficients(inp, True, np.ones(12))
    filled = (coef * shares(get_policy("las").allocate(inp), 12, 3)).sum(axis=1)
    centre = (coef * shares(get_policy("las-centre").allocate(inp), 12, 3)).sum(axis=1)
    assert filled.min() == pytest.approx(centre.min(), rel=1e-4)
    # the centre leaves much of the face unused here (a third of the total or more, measured)
    assert filled.sum() > 1.3 * centre.sum()


def test_lexicographic_raises_the_rows_above_the_bottleneck():
    # Job 0 runs only on f0 (1 device); jobs 1 and 2 run on both flavors, f1 has 2 devices.
    # The minimum is set by job 0 and whoever shares f0 with it; las-lex then gives jobs 1 and
    # 2 all of f1 they can use, so nobody above the minimum could gain without another losing.
    inp = policy_input([[1.0, 0.0], [1.0, 1.0], [1.0, 1.0]], [1, 2])
    coef = max_min_coefficients(inp, True, np.ones(3))
    lex = (coef * shares(get_policy("las-lex").allocate(inp), 3, 2)).sum(axis=1)
    single = (coef * shares(get_policy("las").allocate(inp), 3, 2)).sum(axis=1)
    assert lex.min() == pytest.approx(single.min(), rel=1e-4)
    x = shares(get_policy("las-lex").allocate(inp), 3, 2)
    assert x[0, 0] == pytest.approx(1.0, abs=1e-4)  # job 0 keeps its only flavor
    np.testing.assert_allclose(x[1:, 1], [1.0, 1.0], atol=1e-4)  # 1 and 2 fill f1


@pytest.mark.parametrize("seed", range(3))
def test_lexicographic_sorted_levels_dominate_the_single_lp(seed):
    # the sorted vector of normalised throughputs is lexicographically >= the single LP's
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0.2, 3.0, (10, 3))
    sf = rng.choice([1, 2, 4], 10)
    inp = policy_input(rates, [6, 6, 6], sf=sf)
    coef = max_min_coefficients(inp, True, np.ones(10))
    lex = np.sort((coef * shares(get_policy("las-lex").allocate(inp), 10, 3)).sum(axis=1))
    cen = np.sort((coef * shares(get_policy("las-centre").allocate(inp), 10, 3)).sum(axis=1))
    assert lex[0] == pytest.approx(cen[0], rel=1e-4)
    k = int(np.argmax(np.abs(lex - cen) > 1e-6 * np.abs(cen).max()))
    assert lex[k] >= cen[k] - 1e-6 * np.abs(cen).max()
