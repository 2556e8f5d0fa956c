"""SLO-driven prefill sizing from a replay of the recent past (serving/sizing.py)."""

import numpy as np
import pytest

from computepool.serving.sizing import slo_rate


def _wait_share(t, w, c, own, delay):
    """Brute-force FIFO queue at rate c: share of prompts with wait + own <= delay."""
    free, ok = 0.0, 0
    for ti, wi in zip(t, w, strict=True):
        start = max(ti, free)
        free = start + wi / c
        ok += (start - ti) + wi / own <= delay
    return ok / len(t)


def test_the_rate_found_is_the_smallest_that_meets_the_quantile():
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0, 600, 3000))
    t[1000:1200] = np.sort(rng.uniform(200, 202, 200))  # a 2-s burst
    t = np.sort(t)
    w = rng.uniform(0.5, 2.0, len(t))
    own, delay, q = 100.0, 1.5, 0.99
    c = slo_rate(t, w, 600.0, 600.0, delay, own, q)
    assert _wait_share(t, w, c, own, delay) >= q
    assert _wait_share(t, w, 0.97 * c, own, delay) < q
    assert c > w.sum() / 600.0  # the burst, not the mean, sets it


def test_only_arrived_prompts_count_and_a_too_slow_instance_is_reported():
    t = np.array([1.0, 2.0, 3.0, 100.0])
    w = np.array([1.0, 1.0, 1.0, 1000.0])
    assert slo_rate(t, w, 50.0, 60.0, 1.0, 10.0, 0.99) == slo_rate(
        t[:3], w[:3], 50.0, 60.0, 1.0, 10.0, 0.99
    )
    assert slo_rate(t, w, 0.5, 60.0, 1.0, 10.0, 0.99) == 0.0
    assert slo_rate(t, w, 200.0, 300.0, 1.0, 10.0, 0.99) == pytest.approx(float("inf"))


def test_at_low_rates_the_window_reaches_back_for_enough_tail_samples():
    t = np.arange(0.0, 1000.0, 1.0)  # one prompt a second
    w = np.ones_like(t)
    w[100:130] = 50.0  # a burst of heavy prompts ~880 s back, outside a 300-s window
    args = (t, w, 999.0, 300.0, 1.0, 100.0, 0.99)
    short = slo_rate(*args)
    # 2 tail samples at the 99th percentile need 200 prompts: still inside the 300 s
    assert slo_rate(*args, tail_samples=2) == short
    # 10 need 1,000: the window reaches back over the burst, which needs a higher rate
    assert slo_rate(*args, tail_samples=10) > 2 * short


def test_history_keeps_a_past_burst_for_its_horizon_and_never_lowers_the_need():
    from computepool.serving.sizing import with_history

    hist: list[tuple[float, float]] = []
    needs = [1.0, 9.0, 1.0, 1.0, 1.0, 1.0]
    got = [with_history(hist, 30.0 * i, n, 90.0, 1.0) for i, n in enumerate(needs)]
    # the burst at t=30 is kept until it is older than 90 s (t=150 drops it)
    assert got == [1.0, 9.0, 9.0, 9.0, 9.0, 1.0]
    hist.clear()
    got = [with_history(hist, 30.0 * i, n, 1e9, 0.5) for i, n in enumerate([4.0, 1.0, 1.0, 8.0])]
    assert got == [4.0, 2.5, 1.0, 8.0]  # the median of the past, or the need when larger
