"""The round mechanism's starvation guard on Gavel's multi-GPU workload (Fig. 9 setting).

Under Gavel's order a row whose share is small next to its neighbours' can lose every reset
period; the guard (``SchedulerConfig.starvation_rounds``) serves rows owed more than a few rounds
of their share. (8-GPU jobs starved outright here while LAS normalised gangs by the water-filled
equal share; with Gavel's normalisation they no longer do, and the guard only shortens them.)
"""

import numpy as np
import pytest

from computepool.sim.run import SimConfig
from computepool.sim.runner import load_inputs, run_policy


@pytest.fixture(scope="module")
def gavel_multi_gpu():
    return load_inputs("gavel-36x3", "gavel:rate=2.6,jobs=3000,multi_gpu=true,seed=0")


def _jct_hours(inputs, rounds: float) -> tuple[np.ndarray, np.ndarray]:
    res = run_policy(inputs, "las-centre", SimConfig(window=(1000, 2000), starvation_rounds=rounds))
    sl = res.window_slice()
    return res.jct[sl] / 3600.0, inputs.workload.scale_factor[sl]


def test_guard_shortens_large_gangs_without_hurting_the_average(gavel_multi_gpu):
    gavel_jct, sf = _jct_hours(gavel_multi_gpu, float("inf"))
    guarded_jct, _ = _jct_hours(gavel_multi_gpu, 2.0)
    assert np.isfinite(gavel_jct).all() and np.isfinite(guarded_jct).all()
    big = sf == 8
    assert big.sum() >= 20
    # 8-GPU jobs: 78.3 h mean under Gavel's order, 74.0 h with the guard (measured with the
    # exact face centre; 92.5 h and 76.4 h with HiGHS' IPX point, 139 h and 87 h before LAS
    # normalised gangs as Gavel does): the exact centre starves them less, so the guard has
    # less to remove
    assert guarded_jct[big].mean() < 0.97 * gavel_jct[big].mean()
    assert gavel_jct[big].mean() < 6.0 * gavel_jct[sf == 1].mean()
    # the average: 25.60 h with the guard vs 25.01 h (+2.4 %, measured with the exact centre;
    # within 2 % with IPX's point)
    assert guarded_jct.mean() <= 1.03 * gavel_jct.mean()
