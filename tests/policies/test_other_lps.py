import numpy as np
import pytest

from computepool.policies import get_policy
from computepool.policies.cost import flavor_prices
from computepool.policies.ftf import ftf_problem, min_max_rho
from computepool.policies.makespan import makespan_seconds
from tests.policies.inputs import policy_input, shares


def test_ftf_hand_computed():
    # A: [2, 1], B: [1, 2], one GPU of each; equal share gives both 1.5 steps/s.
    # A has waited 3 s with 3 steps left: D_A = 3 + 3/1.5 = 5, best rho_A = (3 + 3/2)/5 = 0.9.
    # B is new with 3 steps: D_B = 2; it needs rho_B <= 0.9 -> thr_B >= 3/1.8.
    inp = policy_input(
        [[2.0, 1.0], [1.0, 2.0]], [1, 1], arrival=[0.0, 3.0], now=3.0, steps_left=[3.0, 3.0]
    )
    rows = np.arange(2)
    rho, x = min_max_rho(ftf_problem(inp, True, rows))
    assert rho == pytest.approx(0.9, rel=2e-3)
    assert x[0, 0] == pytest.approx(1.0, abs=1e-3)
    assert (x[1] * [1.0, 2.0]).sum() >= 3 / 1.8 - 1e-3


def test_ftf_equal_share_is_optimal_on_one_flavor():
    inp = policy_input(
        [[1.0], [1.0]], [1], arrival=[0.0, 100.0], now=100.0, steps_left=[100.0, 100.0]
    )
    x = shares(get_policy("ftf").allocate(inp), 2, 1)
    np.testing.assert_allclose(x[:, 0], [0.5, 0.5], atol=2e-3)


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
