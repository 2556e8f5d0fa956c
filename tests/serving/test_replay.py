import numpy as np
import pytest

from computepool.serving.perf import PerfAssumptions, ShapeTable
from computepool.serving.replay import Group, ServiceReplay
from computepool.serving.streams import RequestStream


def _shape(flops=1e15, a=0.01, kvr=0.0, c=0.0, kv_cap=1e9) -> ShapeTable:
    one = lambda v: np.array([v], dtype=float)  # noqa: E731
    return ShapeTable(
        flavor=np.array([0]),
        tp=np.array([1]),
        frac=one(1.0),
        devices=one(1.0),
        price_h=one(1.0),
        flops=one(flops),
        a=one(a),
        kvr=one(kvr),
        c=one(c),
        kv_cap=one(kv_cap),
        start_s=one(0.0),
        names=("s",),
    )


def _fifo(t, work, rate):
    """Single-server FIFO, brute force: time to first token of each request."""
    out, free = np.zeros(len(t)), 0.0
    for i, (ti, wi) in enumerate(zip(t, work, strict=True)):
        start = max(ti, free)
        free = start + wi / rate
        out[i] = free - ti
    return out


def test_one_replica_replay_is_an_exact_fifo_queue_across_rounds():
    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(0, 300, 400))
    work = rng.uniform(0.5e15, 3e15, len(t))  # 0.5 - 3 s each on the replica
    s = RequestStream(t, np.full(len(t), 1000.0), np.full(len(t), 10.0))
    perf = PerfAssumptions()
    rp = ServiceReplay(s, work, _shape(), tbt_slo=0.1, perf=perf, bin_s=2.0)
    groups = [Group(0, 1, -np.inf)]
    for t0 in range(0, 900, 30):  # rounds of 30 s; the queue outlives the arrivals
        rp.advance(float(t0), float(t0 + 30), groups)
    rate = 1e15 * (1 - 0.01 / (perf.tbt_budget * 0.1))  # prefill share of each step
    assert rp.ttft == pytest.approx(_fifo(t, work, rate), rel=1e-6)


def test_requests_wait_for_a_replica_that_is_not_ready_yet():
    t = np.array([1.0, 2.0])
    s = RequestStream(t, np.full(2, 100.0), np.full(2, 10.0))
    rp = ServiceReplay(s, np.array([1e13, 1e13]), _shape(), 0.1, PerfAssumptions(), bin_s=1.0)
    rp.advance(0.0, 30.0, [Group(0, 1, 10.0)])
    assert rp.ttft[0] == pytest.approx(9.0, abs=0.05)  # 10 s ready - 1 s arrival + tiny prefill
    assert rp.ttft[1] == pytest.approx(8.0, abs=0.05)


def test_decode_overload_breaks_tbt():
    # 200 output tokens per request at 20 req/s with a 5 ms per-sequence step cost: rho > 1
    t = np.linspace(0, 60, 1200, endpoint=False)
    s = RequestStream(t, np.full(len(t), 100.0), np.full(len(t), 200.0))
    rp = ServiceReplay(s, np.full(len(t), 1e12), _shape(c=0.005), 0.1, PerfAssumptions())
    rp.advance(0.0, 60.0, [Group(0, 1, -np.inf)])
    assert np.mean(rp.tbt[t > 20] > 0.1) > 0.9
    light = ServiceReplay(s, np.full(len(t), 1e12), _shape(c=1e-5), 0.1, PerfAssumptions())
    light.advance(0.0, 60.0, [Group(0, 1, -np.inf)])
    assert np.all(light.tbt <= 0.1)


def test_unserved_requests_count_as_missed_at_the_horizon():
    s = RequestStream(np.array([1.0, 2.0]), np.full(2, 100.0), np.full(2, 10.0))
    rp = ServiceReplay(s, np.array([1e13, 1e13]), _shape(), 0.1, PerfAssumptions())
    rp.advance(0.0, 10.0, [])
    rp.close()
    assert np.isinf(rp.ttft).all()
