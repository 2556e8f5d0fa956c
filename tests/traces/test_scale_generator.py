from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from computepool.traces import ScaleSpec, generate_scale, load_workload, parse_scale_spec
from computepool.traces.scale_generator import MEAN_DURATION_S, MEAN_SCALE


def test_mean_duration_matches_samples():
    rng = np.random.default_rng(0)
    u = rng.random(400_000)
    short = rng.random(400_000) < 0.8
    d = 60 * 10 ** np.where(short, 1.5 + 1.5 * u, 3 + u)
    assert d.mean() == pytest.approx(MEAN_DURATION_S, rel=0.01)
    assert abs(MEAN_DURATION_S - 60361.75) < 0.1
    assert abs(MEAN_SCALE - 1.9) < 1e-12


def test_million_jobs_fast_and_small(throughputs):
    spec = parse_scale_spec("scale:jobs=1000000,accelerators=100000,load=0.85,seed=0")
    tracemalloc.start()
    t0 = time.perf_counter()
    w = generate_scale(spec, throughputs)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(w) == 1_000_000
    assert elapsed < 5.0
    assert peak < 500 * 2**20
    assert len(w.classes) == 26 + 3 * 19 and w.ids is None


def test_offered_load_and_mix(throughputs):
    spec = ScaleSpec(jobs=200_000, accelerators=10_000, load=0.85, seed=3)
    w = generate_scale(spec, throughputs)
    sf = w.scale_factor
    for s, p in [(1, 0.7), (2, 0.1), (4, 0.15), (8, 0.05)]:
        assert np.mean(sf == s) == pytest.approx(p, abs=0.005)
    rates = np.array([throughputs.rate(c.job_type, c.scale_factor, "V100") for c in w.classes])
    duration = w.total_steps / rates[w.job_class]  # seconds on the reference accelerator
    offered = np.sum(duration * sf) / w.arrival[-1]  # accelerator-seconds per second
    assert offered / spec.accelerators == pytest.approx(0.85, rel=0.05)
    assert w.arrival[0] == 0 and np.all(np.diff(w.arrival) >= 0)
    assert np.mean(duration > 60_000) == pytest.approx(0.2, abs=0.005)
    non_dist = {"A3C", "CycleGAN"} | {
        f"Recommendation (batch size {b})" for b in (512, 1024, 2048, 4096, 8192)
    }
    assert not {c.job_type for c in w.classes if c.scale_factor > 1} & non_dist


def test_deterministic_and_options(throughputs):
    a = load_workload(
        "scale:jobs=1000,accelerators=100,seed=5,tenants=4,types=generic", throughputs=throughputs
    )
    b = load_workload(
        "scale:jobs=1000,accelerators=100,seed=5,tenants=4,types=generic", throughputs=throughputs
    )
    assert np.array_equal(a.arrival, b.arrival) and np.array_equal(a.total_steps, b.total_steps)
    assert a.tenants == ["t0", "t1", "t2", "t3"] and set(np.unique(a.tenant)) == {0, 1, 2, 3}
    assert {c.job_type for c in a.classes} == {"generic"}
    single = load_workload(
        "scale:jobs=1000,accelerators=100,multi_gpu=false", throughputs=throughputs
    )
    assert set(single.scale_factor) == {1}
    doubled = generate_scale(ScaleSpec(jobs=1000, accelerators=200, seed=5), throughputs)
    base = generate_scale(ScaleSpec(jobs=1000, accelerators=100, seed=5), throughputs)
    assert np.allclose(doubled.arrival * 2, base.arrival)
