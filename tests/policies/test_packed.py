import itertools

import numpy as np
import pytest

from computepool.policies import get_policy
from computepool.policies.lp import INF, LP, csc_from_triplets, solve
from computepool.policies.max_min import max_min_coefficients
from tests.policies.inputs import policy_input


def _pair_rates(C: int, F: int, entries: dict) -> np.ndarray:
    P = np.zeros((C, C, F))
    for (a, b, f), (ra, rb) in entries.items():
        P[a, b, f], P[b, a, f] = ra, rb
    return P


def _throughput(inp, alloc) -> np.ndarray:
    """Normalised effective throughput per row (singles + pairs at their pair rates)."""
    coef = max_min_coefficients(inp, True, inp.weight)
    thr = (coef * alloc.dense(inp.n, inp.num_flavors)).sum(axis=1)
    norm = coef.max(axis=1) / inp.throughput.max(axis=1)
    p, P = alloc.pairs, inp.extras["pair_rates"]
    ca, cb = inp.job_class[p.a], inp.job_class[p.b]
    np.add.at(thr, p.a, p.share * P[ca, cb, p.flavor] * norm[p.a])
    np.add.at(thr, p.b, p.share * P[cb, ca, p.flavor] * norm[p.b])
    return thr


def _time_and_usage(inp, alloc) -> tuple[np.ndarray, np.ndarray]:
    p = alloc.pairs
    t = np.bincount(alloc.rows, weights=alloc.share, minlength=inp.n)
    t += np.bincount(p.a, weights=p.share, minlength=inp.n)
    t += np.bincount(p.b, weights=p.share, minlength=inp.n)
    sf = inp.scale_factor
    use = np.bincount(alloc.flavor, weights=alloc.share * sf[alloc.rows], minlength=inp.num_flavors)
    use += np.bincount(p.flavor, weights=p.share * sf[p.a], minlength=inp.num_flavors)
    return t, use


def test_two_jobs_share_one_device_all_the_time():
    # Alone each runs 1 step/s; together 0.8 each. Normalised by the even split (1 step/s, as
    # Gavel's ProportionalPolicy), the best time share alone gives 0.5 each; sharing the whole
    # time gives 0.8.
    P = _pair_rates(2, 1, {(0, 1, 0): (0.8, 0.8)})
    inp = policy_input([[1.0], [1.0]], [1], extras={"pair_rates": P})
    alloc = get_policy("las-packed").allocate(inp)
    assert len(alloc.pairs) == 1
    assert alloc.pairs.share[0] == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(_throughput(inp, alloc), [0.8, 0.8], atol=1e-3)


def test_sharing_that_slows_both_too_much_is_not_used():
    P = _pair_rates(2, 1, {(0, 1, 0): (0.3, 0.3)})  # 0.6 together < 1.0 alone
    inp = policy_input([[1.0], [1.0]], [1], extras={"pair_rates": P})
    alloc = get_policy("las-packed").allocate(inp)
    assert alloc.pairs.share.sum() < 1e-3
    np.testing.assert_allclose(_throughput(inp, alloc), [0.5, 0.5], atol=1e-3)


def test_same_class_pairs_rotate_and_a_lone_job_never_pairs_with_itself():
    # Three jobs of one class on one device, 0.7 each when paired: every job is paired 2/3 of
    # the time (three pairs of 1/3), 0.467 steps/s against 1/3 alone.
    P = _pair_rates(1, 1, {(0, 0, 0): (0.7, 0.7)})
    inp = policy_input([[1.0]] * 3, [1], classes=np.zeros(3, dtype=int), extras={"pair_rates": P})
    alloc = get_policy("las-packed").allocate(inp)
    np.testing.assert_allclose(np.sort(alloc.pairs.share), [1 / 3] * 3, atol=1e-3)
    assert np.all(alloc.pairs.a != alloc.pairs.b)
    one = policy_input([[1.0]], [1], classes=np.zeros(1, dtype=int), extras={"pair_rates": P})
    alloc = get_policy("las-packed").allocate(one)
    assert len(alloc.pairs) == 0
    assert alloc.share.sum() == pytest.approx(1.0, abs=1e-4)


def _random_case(seed: int, n: int, C: int = 4, F: int = 2, weights: bool = False):
    rng = np.random.default_rng(seed)
    cls = rng.integers(0, C, n)
    cls[:C] = np.arange(C)
    rates = rng.uniform(0.5, 2.0, (C, F))
    P = rng.uniform(0.2, 1.0, (C, C, F)) * rates[:, None, :]
    P[rng.uniform(size=(C, C, F)) < 0.2] = 0.0  # some pairs do not fit in memory
    P = np.minimum(P, np.transpose(P, (1, 0, 2)) * 10.0)
    zero = (P == 0) | (np.transpose(P, (1, 0, 2)) == 0)
    P[zero] = 0.0
    w = rng.uniform(0.5, 2.0, n) if weights else None
    cap = rng.integers(1, max(2, n // 2), F)
    return policy_input(rates[cls], cap, classes=cls, weight=w, extras={"pair_rates": P})


@pytest.mark.parametrize("seed", range(6))
def test_a_pair_never_exceeds_a_device_and_no_job_more_than_its_time(seed):
    inp = _random_case(seed, 30, weights=seed % 2 == 1)
    alloc = get_policy("las-packed").allocate(inp)
    t, use = _time_and_usage(inp, alloc)
    assert np.all(t <= 1 + 1e-6)
    assert np.all(use <= inp.capacity + 1e-6)
    assert np.all(alloc.pairs.a != alloc.pairs.b)
    P = inp.extras["pair_rates"]
    ca, cb = inp.job_class[alloc.pairs.a], inp.job_class[alloc.pairs.b]
    assert np.all(P[ca, cb, alloc.pairs.flavor] > 0)


def _job_pair_optimum(inp) -> float:
    """Gavel's job-pair formulation, every pair of jobs its own variable (tiny cases only)."""
    n, F = inp.n, inp.num_flavors
    coef = max_min_coefficients(inp, True, inp.weight)
    norm = coef.max(axis=1) / inp.throughput.max(axis=1)
    P = inp.extras["pair_rates"]
    cols = []  # (members, flavor, rates)
    for m in range(n):
        for f in range(F):
            if coef[m, f] > 0:
                cols.append(((m,), f, (coef[m, f],)))
    for i, j in itertools.combinations(range(n), 2):
        ci, cj = inp.job_class[i], inp.job_class[j]
        for f in range(F):
            if P[ci, cj, f] > 0 and P[cj, ci, f] > 0:
                cols.append(((i, j), f, (P[ci, cj, f] * norm[i], P[cj, ci, f] * norm[j])))
    r, c, v = [], [], []
    for k, (members, f, rates) in enumerate(cols):
        for m, rate in zip(members, rates, strict=True):
            r += [m, n + F + m]
            c += [k, k]
            v += [1.0, rate]
        r.append(n + f)
        c.append(k)
        v.append(float(inp.scale_factor[members[0]]))
    K = len(cols)
    r += list(range(n + F, 2 * n + F))
    c += [K] * n
    v += [-1.0] * n
    start, index, value = csc_from_triplets(np.array(r), np.array(c), np.array(v), K + 1)
    cost = np.zeros(K + 1)
    cost[K] = 1.0
    lo = np.concatenate([np.full(n + F, -INF), np.zeros(n)])
    hi = np.concatenate([np.ones(n), inp.capacity.astype(float), np.full(n, INF)])
    lp = LP(cost, np.zeros(K + 1), np.full(K + 1, INF), lo, hi, start, index, value)
    sol = solve(lp)
    assert sol.optimal
    return float(sol.x[K])


@pytest.mark.parametrize("seed", range(5))
def test_partner_class_lp_reaches_the_job_pair_optimum(seed):
    inp = _random_case(100 + seed, 7, C=3, weights=seed % 2 == 0)
    alloc = get_policy("las-packed").allocate(inp)
    ours = _throughput(inp, alloc).min()
    assert ours == pytest.approx(_job_pair_optimum(inp), rel=2e-3)


def test_pop_packed_stays_close_to_the_exact_optimum():
    inp = _random_case(7, 160, C=4, F=3, weights=True)
    exact = _throughput(inp, get_policy("las-packed").allocate(inp)).min()
    pop = _throughput(inp, get_policy("las-packed", partitions=4).allocate(inp)).min()
    assert pop <= exact * (1 + 1e-3)
    assert pop >= exact * 0.9


def test_within_capacity_scales_an_overshooting_flavor_down():
    from computepool.model.allocation import Allocation, PairShares
    from computepool.policies.packed import within_capacity

    inp = policy_input([[1.0, 1.0]] * 3, [1, 2])
    pairs = PairShares(np.array([0]), np.array([1]), np.array([0]), np.array([0.5]))
    alloc = Allocation(
        np.array([2, 2]), np.array([0, 1]), np.array([0.75, 0.5]), pairs=pairs
    )  # flavor 0: 0.5 (pair) + 0.75 (row 2) = 1.25 > 1; flavor 1: 0.5 <= 2
    out = within_capacity(alloc, inp)
    _, use = _time_and_usage(inp, out)
    np.testing.assert_allclose(use, [1.0, 0.5])
    assert out.pairs.share[0] == pytest.approx(0.4)
