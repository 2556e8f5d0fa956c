"""The autoscaler's history functions (plain Python over lists, once per service and round)
against the array definitions they replace."""

from __future__ import annotations

import numpy as np
import pytest

import computepool.serving.autoscaler as asc
from computepool.serving.service import ServingConfig


def _forecast_ref(t: np.ndarray, rate: np.ndarray, now: float, cfg: ServingConfig) -> float:
    if len(t) == 0:
        return 0.0
    recent = t > now - cfg.peak_window_s - 1e-9
    peak = float(rate[recent].max()) if recent.any() else float(rate[-1])
    trend = np.nonzero(t > now - cfg.window_s * 2 - 1e-9)[0]
    slope = 0.0
    if len(trend) >= 3:
        i = trend[0]
        slope = float(rate[-1] - rate[i]) / max(float(t[-1] - t[i]), cfg.window_s)
    return max(peak, float(rate[-1]) + max(slope, 0.0) * cfg.forecast_s)


def _floor_ref(t: np.ndarray, need: np.ndarray, now: float, delay_s: float) -> float:
    m = t > now - delay_s - 1e-9
    return float(need[m].max()) if m.any() else 0.0


@pytest.mark.parametrize("seed", range(20))
def test_history_functions_match_the_array_definitions(seed: int) -> None:
    rng = np.random.default_rng(seed)
    cfg = ServingConfig()
    n = int(rng.integers(0, 40))
    # rounds every interval, sometimes with gaps; "now" on a round or after a gap
    t = np.cumsum(rng.choice([cfg.interval_s, 2 * cfg.interval_s, 300.0], size=n))
    rate = rng.gamma(1.5, 3.0, size=n) * rng.choice([0.0, 1.0], size=n, p=[0.2, 0.8])
    now = float(t[-1]) + float(rng.choice([0.0, 0.0, 45.0, 400.0])) if n else 10.0
    for tt, rr in ((t, rate), (t.tolist(), rate.tolist())):  # arrays and lists alike
        got = asc.forecast_rate(tt, rr, now, cfg)
        assert got == _forecast_ref(t, rate, now, cfg)
        delay = float(rng.choice([0.0, cfg.scale_down_delay_s, 1e4]))
        assert asc.scale_down_floor(tt, rr, now, delay) == _floor_ref(t, rate, now, delay)


def test_a_window_edge_is_inside_by_the_same_tolerance() -> None:
    cfg = ServingConfig()
    t = [0.0, 30.0, 60.0]
    r = [9.0, 1.0, 1.0]
    now = cfg.peak_window_s  # t=0 lies exactly peak_window_s back: still counted
    assert asc.forecast_rate(t, r, now, cfg) == 9.0
    assert asc.forecast_rate(t, r, now + 1e-6, cfg) == pytest.approx(1.0)
    assert asc.scale_down_floor(t, r, 60.0, 60.0) == 9.0
    assert asc.scale_down_floor(t, r, 60.0 + 1e-6, 60.0) == 1.0


def test_a_rise_over_a_short_span_is_not_extrapolated_as_a_steep_trend() -> None:
    """A live pool with 1-s rounds: the first rates jump from 0 to r within 2 s. The trend
    over that span (r / 2 s, x 60 s ahead) sized the service for ~31 r; a rate measured over
    ``window_s`` cannot tell such a rise from a step, so it counts as spread over ``window_s``."""
    cfg = ServingConfig()
    r = 3.0
    got = asc.forecast_rate([0.0, 1.0, 2.0], [0.0, 0.0, r], 2.0, cfg)
    assert r <= got <= r * (1.0 + cfg.forecast_s / cfg.window_s)
    assert got == pytest.approx(2.0 * r)  # defaults: forecast_s == window_s
    # a steady rise measured over more than window_s keeps its own slope
    t = [0.0, 40.0, 80.0]
    assert asc.forecast_rate(t, [0.0, 2.0, 4.0], 80.0, cfg) == pytest.approx(4.0 + 4.0 / 80 * 60)


def test_a_replayed_need_is_held_for_the_whole_prefill_scale_down_delay():
    # the history was trimmed to scale_down_delay_s: a longer prefill_scale_down_delay_s
    # (replayed needs, prefill pools) looked back less far than asked
    from computepool.serving.perf import Mix

    cfg = ServingConfig(scale_down_delay_s=60.0, prefill_scale_down_delay_s=900.0,
                        interval_s=30.0, peak_window_s=60.0, window_s=30.0)  # fmt: skip
    mix = Mix(1e12, 100.0, 500.0)
    t, rate, need = [], [], []
    asc.plan_need(t, rate, need, 0.0, 10.0, 0.0, mix, 0.0, cfg, replayed=True)
    floor = 0.0
    for k in range(1, 25):  # 12 minutes of quiet after the 10 req/s need
        _, floor = asc.plan_need(t, rate, need, 30.0 * k, 1.0, 0.0, mix, 0.0, cfg, replayed=True)
    assert floor == pytest.approx(10.0)
