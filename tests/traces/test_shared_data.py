"""Whole public traces from the shared data folder (``../shared/data`` beside the repository).

Skipped when that folder is absent; set ``COMPUTEPOOL_SHARED_DATA`` to point elsewhere.
The expected counts are those stated in the folder's READMEs.
"""

from __future__ import annotations

import numpy as np
import pytest

from computepool.traces import load_workload, read_openb_pods
from tests.shared_data import shared


def test_gavel_msr_seed0(throughputs):
    w = load_workload(str(shared("gavel/traces/msr/seed=0")), throughputs=throughputs)
    counts = dict(zip(w.tenants, np.bincount(w.tenant), strict=True))
    assert counts["11cb48"] == 2000 and counts["0e4a51"] == 1181 and counts["795a4c"] == 3
    assert len(w) == 15264 and len(w.tenants) == 15
    assert w.arrival.max() / 3600 == pytest.approx(3005, rel=0.01)
    sf = w.scale_factor[w.tenant == w.tenants.index("11cb48")]
    assert np.bincount(sf)[[1, 2, 4, 8, 16, 32, 64]].tolist() == [1559, 81, 257, 23, 69, 8, 1]


def test_philly_full(throughputs):
    w = load_workload(str(shared("philly/philly_jobs_pollux_sia.csv")), throughputs=throughputs)
    assert len(w) == 82247 and len(w.tenants) == 15
    assert int(np.sum(w.scale_factor == 1)) == 76627
    dur = w.total_steps / throughputs.rate("generic", 1, "V100") / w.scale_factor
    assert np.median(dur) == pytest.approx(1144, rel=0.01)


def test_openb_default():
    pods = read_openb_pods(shared("alibaba-openb-v2023/csv/openb_pod_list_default.csv"))
    assert len(pods) == 8152
    assert int(np.sum(pods.num_gpu == 0)) == 1088
    assert int(np.sum((pods.num_gpu == 1) & (pods.gpu_milli < 1000))) == 3078
    assert [int(np.sum(pods.num_gpu == g)) for g in (2, 4, 8)] == [16, 15, 44]
