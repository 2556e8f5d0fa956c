import numpy as np
import pytest

from computepool.placement.openb import read_nodes, read_pods
from computepool.placement.pack import arrival_order, discretise, run_pack
from tests.placement.helpers import NODES, PODS


@pytest.fixture(scope="module")
def inputs():
    return read_nodes(NODES), read_pods(PODS)


def test_arrivals_stop_at_tune_times_capacity(inputs):
    nodes, pods = inputs
    milli = np.array([r.total_gpu_milli for r in pods.requests])
    for tune in (0.5, 1.3):
        order = arrival_order(pods, nodes.total_gpu_milli, tune, seed=3)
        total = milli[order].sum()
        assert total <= tune * nodes.total_gpu_milli
        assert total > tune * nodes.total_gpu_milli - milli.max() * 2
    cap = int(milli.sum())
    assert not np.array_equal(arrival_order(pods, cap, 1.0, 1), arrival_order(pods, cap, 1.0, 2))


@pytest.mark.parametrize("policy", ["random", "bestfit", "fgd"])
def test_pack_curves_are_consistent(inputs, policy):
    nodes, pods = inputs
    r = run_pack(nodes, pods, policy, seed=42, tune=1.3)
    assert np.all(np.diff(r.arrived) >= 0) and np.all(np.diff(r.allocated) >= 0)
    assert np.all(r.allocated <= r.arrived + 1e-9) and r.allocated[-1] <= 100.0
    assert 125 < r.arrived[-1] <= 130.0
    assert (r.fragmented >= 0).all()
    a = r.discretise(r.allocated)
    assert a.shape == (131,) and 50 < a[130] <= 100
    # the input state is not touched
    assert nodes.used_gpu_milli() == 0


def test_same_seed_same_run(inputs):
    nodes, pods = inputs
    a = run_pack(nodes, pods, "fgd", seed=7)
    b = run_pack(nodes, pods, "fgd", seed=7)
    np.testing.assert_array_equal(a.allocated, b.allocated)


def test_discretise_takes_the_mean_per_rounded_percent_and_neighbours_when_empty():
    arrived = np.array([0.2, 0.4, 1.1, 3.0])
    values = np.array([1.0, 3.0, 5.0, 7.0])
    out = discretise(arrived, values, top=4)
    assert out[0] == 2.0 and out[1] == 5.0 and out[3] == 7.0
    assert out[2] == pytest.approx(6.0)  # nothing rounds to 2: mean over 1..3
    assert out[4] == 7.0


def test_bad_tune_is_refused(inputs):
    with pytest.raises(ValueError, match="tune"):
        run_pack(*inputs, "fgd", seed=1, tune=0)
