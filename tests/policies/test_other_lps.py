import numpy as np
import pytest

from computepool.policies import get_policy
from computepool.policies.cost import flavor_prices
from computepool.policies.ftf import (
    ISOLATED_DONE,
    FinishTimeFairness,
    ftf_problem,
    isolated_rate,
    min_max_rho,
)
from computepool.policies.makespan import makespan_seconds
from computepool.solvers.min_max_ratio import min_max_ratio
from tests.policies.inputs import policy_input, shares


def test_ftf_hand_computed_elapsed_reference():
    # A: [2, 1], B: [1, 2], one GPU of each; equal share gives both 1.5 steps/s.
    # A has waited 3 s with 3 steps left: D_A = 3 + 3/1.5 = 5, best rho_A = (3 + 3/2)/5 = 0.9.
    # B is new with 3 steps: D_B = 2; it needs rho_B <= 0.9 -> thr_B >= 3/1.8.
    inp = policy_input(
        [[2.0, 1.0], [1.0, 2.0]], [1, 1], arrival=[0.0, 3.0], now=3.0, steps_left=[3.0, 3.0]
    )
    rows = np.arange(2)
    rho, x = min_max_rho(ftf_problem(inp, True, rows, "elapsed"))
    assert rho == pytest.approx(0.9, rel=2e-3)
    assert x[0, 0] == pytest.approx(1.0, abs=1e-3)
    assert (x[1] * [1.0, 2.0]).sum() >= 3 / 1.8 - 1e-3


def _waiter_input(done: dict | None = None):
    # Same as above, but Gavel's reference: A waited 3 s without progress, so its reference is
    # its isolated time of the work done (``done``, 0 by default) + 3 / 1.5.
    extras = {} if done is None else {ISOLATED_DONE: done}
    return policy_input(
        [[2.0, 1.0], [1.0, 2.0]],
        [1, 1],
        arrival=[0.0, 3.0],
        now=3.0,
        steps_left=[3.0, 3.0],
        extras=extras,
    )


@pytest.mark.parametrize("method", ["conic", "simplex"])
def test_ftf_gavel_reference_hand_computed(method):
    # D_A = 0 + 3/1.5 = 2: even running all the time on its fast GPU, rho_A = (3 + 3/2)/2 = 2.25.
    # B (D_B = 2) then needs only rho_B <= 2.25, i.e. thr_B >= 3/4.5.
    inp = _waiter_input()
    rows = np.arange(2)
    p = ftf_problem(inp, True, rows)
    rho = (
        min_max_rho(p)[0]
        if method == "simplex"
        else min_max_ratio(
            p.rates, p.elapsed, p.steps_left, p.isolated_time, p.scale_factor, p.capacity
        )[0]
    )
    assert rho == pytest.approx(2.25, rel=2e-3)
    x = shares(FinishTimeFairness(method=method).allocate(inp), 2, 2)
    assert x[0, 0] == pytest.approx(1.0, abs=1e-3)
    assert (x[1] * [1.0, 2.0]).sum() >= 3 / 4.5 - 1e-3


def test_ftf_gavel_reference_reads_the_schedulers_isolated_time():
    # A's 1.5 s of isolated time done: D_A = 1.5 + 2 = 3.5, best rho_A = 4.5/3.5; job ids are rows.
    rows = np.arange(2)
    p = ftf_problem(_waiter_input({0: 1.5}), True, rows)
    np.testing.assert_allclose(p.isolated_time, [3.5, 2.0])
    assert min_max_rho(p)[0] == pytest.approx(4.5 / 3.5, rel=2e-3)


def test_ftf_conic_and_lp_search_agree_on_the_optimum():
    rng = np.random.default_rng(3)
    n = 40
    rates = rng.uniform(0.5, 5.0, size=(n, 3))
    inp = policy_input(
        rates,
        [4, 4, 4],
        arrival=rng.uniform(0, 5000, n),
        now=5000.0,
        steps_left=rng.uniform(1e3, 1e5, n),
        extras={ISOLATED_DONE: {i: float(rng.uniform(0, 2000)) for i in range(n)}},
    )
    p = ftf_problem(inp, True, np.arange(n))
    lp_rho, _ = min_max_rho(p, tol=1e-5)
    conic_rho, x = min_max_ratio(
        p.rates, p.elapsed, p.steps_left, p.isolated_time, p.scale_factor, p.capacity
    )
    assert conic_rho == pytest.approx(lp_rho, rel=1e-3)
    assert np.max(p.rho_of((x * p.rates).sum(axis=1))) <= conic_rho * (1 + 1e-4)
    assert (x.sum(axis=0) <= 4 + 1e-6).all() and (x.sum(axis=1) <= 1 + 1e-6).all()


def test_ftf_equal_share_is_optimal_on_one_flavor():
    inp = policy_input(
        [[1.0], [1.0]], [1], arrival=[0.0, 100.0], now=100.0, steps_left=[100.0, 100.0]
    )
    x = shares(get_policy("ftf", reference="elapsed").allocate(inp), 2, 1)
    np.testing.assert_allclose(x[:, 0], [0.5, 0.5], atol=2e-3)


def test_ftf_gavel_reference_gives_the_job_that_waited_more():
    # Equal work, one has waited 100 s without progress: Gavel's rho pushes it ahead (the
    # reference "now - arrival" gave both half).
    inp = policy_input(
        [[1.0], [1.0]], [1], arrival=[0.0, 100.0], now=100.0, steps_left=[100.0, 100.0]
    )
    x = shares(get_policy("ftf").allocate(inp), 2, 1)
    assert x[0, 0] > 0.6 and x[:, 0].sum() == pytest.approx(1.0, abs=1e-3)


def test_ftf_refuses_unknown_reference():
    with pytest.raises(ValueError, match="reference"):
        FinishTimeFairness(reference="wall")


def test_isolated_rate_is_gavels_isolated_policy():
    # 2 jobs, capacity [4, 2]: single-GPU rows get shares (4/2, 2/2) scaled to sum 1 -> (2/3, 1/3);
    # an 8-GPU gang among 2 jobs gets (4/16, 2/16) (Gavel does not water-fill leftovers).
    inp = policy_input([[3.0, 6.0], [3.0, 6.0]], [4, 2], sf=[1, 8])
    np.testing.assert_allclose(isolated_rate(inp, True), [2 + 2, 0.75 + 0.75])


def test_makespan_hand_computed():
    inp = policy_input([[1.0], [1.0]], [1], steps_left=[100.0, 300.0])
    x = shares(get_policy("makespan").allocate(inp), 2, 1)
    assert makespan_seconds(inp, x) == pytest.approx(400.0, rel=1e-4)
    inp = policy_input([[2.0, 1.0], [1.0, 1.0]], [1, 1], steps_left=[2.0, 1.0])
    x = shares(get_policy("makespan").allocate(inp), 2, 2)
    assert makespan_seconds(inp, x) == pytest.approx(1.0, rel=1e-4)


def test_cost_picks_cheapest_throughput_and_meets_deadline():
    # f0: 2 steps/s at $4/h, f1: 1 step/s at $1/h -> f1 is twice the progress per dollar.
    inp = policy_input([[2.0, 1.0]], [1, 1], price=[4.0, 1.0])
    x = shares(get_policy("cost").allocate(inp), 1, 2)
    np.testing.assert_allclose(x, [[0, 1]], atol=1e-6)
    # deadline in 1 s with 1.5 steps left: thr >= 1.5 -> half the time on f0, half on f1
    inp = policy_input([[2.0, 1.0]], [1, 1], price=[4.0, 1.0], steps_left=[1.5], deadline=[1.0])
    x = shares(get_policy("cost").allocate(inp), 1, 2)
    np.testing.assert_allclose(x, [[0.5, 0.5]], atol=1e-6)


def test_cost_extra_per_flavor_moves_the_choice():
    inp = policy_input(
        [[2.0, 1.0]],
        [1, 1],
        price=[4.0, 1.0],
        extras={"flavor_extra_cost_per_hour": np.array([0.0, 10.0])},
    )
    x = shares(get_policy("cost").allocate(inp), 1, 2)
    np.testing.assert_allclose(x, [[1, 0]], atol=1e-6)


def test_cost_impossible_deadline_still_allocates():
    inp = policy_input([[2.0, 1.0]], [1, 1], price=[4.0, 1.0], steps_left=[100.0], deadline=[1.0])
    x = shares(get_policy("cost").allocate(inp), 1, 2)
    np.testing.assert_allclose(x, [[1, 0]], atol=1e-6)  # as fast as it can go


def test_cost_rejects_bad_extra_cost():
    inp = policy_input([[1.0, 1.0]], [1, 1], extras={"flavor_extra_cost_per_hour": np.array([1.0])})
    with pytest.raises(ValueError, match="2 flavors"):
        flavor_prices(inp)


def test_srpt_and_fifo_orders():
    inp = policy_input(
        [[2.0, 1.0], [2.0, 1.0]], [1, 1], steps_left=[100.0, 10.0], arrival=[0.0, 1.0]
    )
    srpt = get_policy("srpt").allocate(inp)
    fifo = get_policy("fifo").allocate(inp)
    assert dict(zip(srpt.rows.tolist(), srpt.flavor.tolist(), strict=True)) == {1: 0, 0: 1}
    assert dict(zip(fifo.rows.tolist(), fifo.flavor.tolist(), strict=True)) == {0: 0, 1: 1}
