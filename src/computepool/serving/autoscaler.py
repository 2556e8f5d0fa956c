"""The autoscaler: load history + a short forecast -> capacity needed and the shapes to add.

Pure functions, no clock or pool state: the controller feeds them what replicas report (request
rate, token mix, queue backlog) and applies the result.

* **forecast**: the highest rate of the last ``peak_window_s`` plus the linear trend of the last
  measurements extrapolated ``forecast_s`` ahead (never below the latest rate);
* **needed**: forecast + the rate that drains the current prefill backlog within ``drain_s``;
* **scale-down** only to the highest need of the last ``scale_down_delay_s`` (hysteresis);
* **shape choice** (price-performance): each feasible shape's replica capacity at the current
  mix (``perf.capacity_rps``) gives the replicas and so the USD/h to carry the need; shapes are
  ranked cheapest first, those that would exceed ``max_replicas`` last.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

import numpy as np

from computepool.serving.perf import Mix, ShapeTable, idle_ttft
from computepool.serving.service import ServiceSpec, ServingConfig


def forecast_rate(
    t: Sequence[float], rate: Sequence[float], now: float, cfg: ServingConfig
) -> float:
    """Rate to provision for, from per-round measurements ``rate`` taken at increasing times
    ``t`` (lists or arrays: plain Python over the few recent entries, as it runs once per
    service and round).

    Forecast = max(peak of the last ``peak_window_s``, latest + trend x ``forecast_s``). The
    trend is the rise from the first measurement of the last 2 x ``window_s`` to the latest
    (at least three measurements), divided by the time between them but by no less than
    ``window_s``: each rate is measured over ``window_s``, so a rise seen over a shorter span
    (a live pool's 1-s rounds at start-up, a service's first rates jumping from 0) cannot be
    told from a step and is taken as spread over ``window_s`` — the trend then adds at most
    ``forecast_s`` / ``window_s`` x the latest rate (rates are >= 0) instead of growing as the
    rounds get shorter. Rounds at least ``window_s`` / 2 apart (the simulator's 30 s against
    60 s) always span ``window_s`` with three measurements, so the floor never applies there."""
    if len(t) == 0:
        return 0.0
    i = bisect_right(t, now - cfg.peak_window_s - 1e-9)  # first t > now - peak_window_s
    last = float(rate[-1])
    peak = float(max(rate[i:])) if i < len(t) else last
    j = bisect_right(t, now - cfg.window_s * 2 - 1e-9)
    slope = 0.0
    if len(t) - j >= 3:
        slope = (last - float(rate[j])) / max(float(t[-1]) - float(t[j]), cfg.window_s, 1e-9)
    ahead = last + max(slope, 0.0) * cfg.forecast_s
    return max(peak, ahead)


def needed_rate(forecast: float, backlog_flops: float, mix: Mix, cfg: ServingConfig) -> float:
    """Request rate the replicas must carry: the forecast plus draining the backlog."""
    drain = backlog_flops / max(mix.prefill_flops, 1.0) / cfg.drain_s
    return forecast + drain


def scale_down_floor(
    t: Sequence[float], needed: Sequence[float], now: float, delay_s: float
) -> float:
    """Capacity may only drop to the highest need of the last ``delay_s`` (``t`` increasing)."""
    i = bisect_right(t, now - delay_s - 1e-9)
    return float(max(needed[i:])) if i < len(t) else 0.0


def plan_need(
    hist_t: list[float],
    hist_rate: list[float],
    hist_need: list[float],
    now: float,
    rate: float,
    backlog_flops: float,
    mix: Mix,
    floor0: float,
    cfg: ServingConfig,
    replayed: bool = False,
    prefill: bool = False,
) -> tuple[float, float]:
    """One decision's (capacity needed, scale-down floor), req/s, from the rate measured at
    ``now``; appends to the histories (trimmed to what the decisions look back at). The
    simulator's services, mux groups and prefill pools and the live pool's mux groups all
    decide here. ``replayed``: ``rate`` comes from a replay of the recent past
    (``burst_sizing: replay``, ``sizing.py``), which already spans its peaks: taken without
    the forecast. Such a need (a slow estimate) and a prefill pool's (``prefill``: its
    instances hold no sequences, ``disagg.py``) are released after
    ``prefill_scale_down_delay_s``, the others after ``scale_down_delay_s``."""
    hist_t.append(now)
    hist_rate.append(rate)
    delays = cfg.scale_down_delay_s, cfg.prefill_scale_down_delay_s
    keep = max(cfg.peak_window_s, 2 * cfg.window_s, *delays) + cfg.interval_s
    if hist_t[0] < now - 2 * keep:  # the autoscaler only looks back ``keep`` seconds
        i = bisect_left(hist_t, now - keep)
        del hist_t[:i], hist_rate[:i], hist_need[:i]
    need = rate if replayed else forecast_rate(hist_t, hist_rate, now, cfg)
    need = max(needed_rate(need, backlog_flops, mix, cfg), floor0)
    hist_need.append(need)
    quick = replayed or prefill
    delay = cfg.prefill_scale_down_delay_s if quick else cfg.scale_down_delay_s
    return need, scale_down_floor(hist_t, hist_need, now, delay)


def replicas_after(
    need: float, floor: float, cap: float, now_n: int, min_replicas: int, max_replicas: int
) -> int:
    """Replicas of capacity ``cap`` after one decision, as the simulator's controller steps
    them: from ``now_n`` down while the rest still carry the scale-down ``floor``, then up
    while short of ``need`` (within [min, max])."""
    n = now_n
    while n > min_replicas and n * cap - cap >= floor:
        n -= 1
    while n < max_replicas and (n * cap < need or n < min_replicas):
        n += 1
    return n


def usable_shapes(
    shapes: ShapeTable, svc: ServiceSpec, p99_flops: float, cfg: ServingConfig
) -> np.ndarray:
    """Shapes that meet both SLOs with room when idle: TTFT of the p99 prompt within 60 % of
    the TTFT SLO, decode step at batch 0 within 80 % of the TBT budget."""
    budget = cfg.perf.tbt_budget * svc.tbt_slo_s
    ok = idle_ttft(shapes, p99_flops) <= 0.6 * svc.ttft_slo_s
    return ok & (shapes.a <= 0.8 * budget)


def rank_shapes(
    cap: np.ndarray,
    price_h: np.ndarray,
    usable: np.ndarray,
    needed: float,
    min_replicas: int,
    max_replicas: int,
) -> np.ndarray:
    """Usable shapes with capacity, cheapest first for carrying ``needed`` req/s."""
    idx = np.nonzero(usable & (cap > 0))[0]
    if len(idx) == 0:
        return idx
    n = np.maximum(np.ceil(needed / cap[idx] - 1e-9), max(min_replicas, 1))
    over = n > max_replicas
    cost = n * price_h[idx]
    # prefer shapes that fit within max_replicas; among those that do not, the biggest first
    key = np.where(over, 1e18 - cap[idx], cost)
    return idx[np.lexsort((price_h[idx], key))]


def replicas_for(needed: float, cap: float, min_replicas: int, max_replicas: int) -> int:
    if cap <= 0:
        return min_replicas
    return int(min(max(math.ceil(needed / cap - 1e-9), min_replicas), max_replicas))
