import numpy as np
import pytest

from computepool.placement.state import MILLI, UNTRACKED, SlotState
from tests.builders import make_pool
from tests.placement.helpers import state


def test_build_pads_devices_and_indexes_types():
    s = state([("A", 2), ("B", 4), ("", 0)])
    assert s.types == ("A", "B")
    assert s.gpu_free.shape == (3, 4)
    assert s.gpu_free[0].tolist() == [MILLI, MILLI, 0, 0]
    assert s.gpu_type.tolist() == [0, 1, -1]
    assert s.total_gpu_milli == 6 * MILLI


def test_allocate_and_release_round_trip_and_bump_version():
    s = state([("A", 2)])
    s.allocate(0, [1], 300, cpu=1000, mem=10)
    assert s.gpu_free[0].tolist() == [MILLI, 700]
    assert s.used_gpu_milli() == 300
    assert s.version[0] == 1
    s.release(0, [1], 300, cpu=1000, mem=10)
    assert s.used_gpu_milli() == 0 and s.cpu_free[0] == s.cpu_cap[0]
    assert s.version[0] == 2


@pytest.mark.parametrize(
    "devices,milli,cpu,match",
    [([2], 100, 0, "no device"), ([0, 0], 100, 0, "twice"), ([0], 100, 10**9, "CPU")],
)
def test_allocate_refuses_impossible_bindings(devices, milli, cpu, match):
    s = state([("A", 2)])
    with pytest.raises(ValueError, match=match):
        s.allocate(0, devices, milli, cpu=cpu)
    assert s.used_gpu_milli() == 0


def test_a_share_never_overdraws_a_device():
    s = state([("A", 1)])
    s.allocate(0, [0], 600)
    with pytest.raises(ValueError, match="less than"):
        s.allocate(0, [0], 500)
    with pytest.raises(ValueError, match="more than a device"):
        s.release(0, [0], 700)


def test_from_pool_keeps_node_order_islands_and_untracked_cpu():
    pool = make_pool({"A": (2, 4), "B": (1, 8)})
    s = SlotState.from_pool(pool)
    assert s.names == tuple(n.name for n in pool.nodes)
    assert s.gpu_count.tolist() == [4, 4, 8]
    assert len(s.islands) == 2 and s.island[0] == s.island[1] != s.island[2]
    assert (s.cpu_cap == UNTRACKED).all()
    np.testing.assert_array_equal(s.flavor, pool.node_flavor)
