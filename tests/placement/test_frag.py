import numpy as np
import pytest

from computepool.placement.frag import TargetWorkload, node_frag
from computepool.placement.request import PodRequest

HALF = PodRequest(cpu_milli=1000, num_gpu=1, gpu_milli=500)
ONE = PodRequest.whole(1, cpu_milli=1000)
CPU = PodRequest(cpu_milli=1000)


def frag(free, cpu, target, types=(0,)):
    return node_frag(
        np.array(free), np.array(cpu, dtype=np.int64), np.array(types, dtype=np.int16), target
    )


def test_popularity_threshold_keeps_the_most_common_types():
    reqs = [HALF] * 90 + [ONE] * 6 + [PodRequest.whole(8)] * 4
    t = TargetWorkload.from_requests(reqs, ("A",), threshold=0.95)
    assert len(t) == 2
    assert t.prob.sum() == pytest.approx(1.0)
    assert t.prob[0] == pytest.approx(90 / 96)


def test_idle_capacity_a_task_cannot_use_is_fragmented():
    t = TargetWorkload.from_requests([ONE], ("A",))
    # two devices: one whole free, one with 400 milli left -> the 400 are fragments
    assert frag([[1000, 400]], [8000], t)[0] == pytest.approx(400)
    # not enough CPU: everything idle is a fragment
    assert frag([[1000, 400]], [500], t)[0] == pytest.approx(1400)


def test_cpu_only_tasks_count_all_idle_devices_and_mixtures_weight_by_probability():
    t = TargetWorkload.from_requests([HALF, CPU], ("A",))
    # HALF (p=.5) can use 1000 and 600 but not 300; CPU (p=.5) counts all 1900 idle
    assert frag([[1000, 600, 300]], [8000], t)[0] == pytest.approx(0.5 * 300 + 0.5 * 1900)


def test_type_constraints_make_other_types_fragments():
    only_b = PodRequest(num_gpu=1, gpu_milli=1000, gpu_spec=frozenset({"B"}))
    t = TargetWorkload.from_requests([only_b], ("A", "B"))
    out = frag([[1000], [1000]], [0, 0], t, types=(0, 1))
    assert out.tolist() == [1000.0, 0.0]


def test_stranded_capacity_is_idle_devices_the_free_cpu_cannot_feed():
    from computepool.placement.frag import node_stranded

    # 1000 CPU per whole device, plus a CPU-only task of 1000: 2 CPU milli per device milli
    t = TargetWorkload.from_requests([ONE, CPU], ("A",))
    assert t.cpu_per_milli == pytest.approx(2.0)
    free = np.array([[1000, 1000, 1000], [1000, 0, 0]])
    out = node_stranded(free, np.array([2000, 5000]), np.array([10**6, 10**6]), t)
    assert out.tolist() == [2000.0, 0.0]
