"""SLO-driven prefill sizing from a replay of the recent past (``serving.burst_sizing: replay``).

The window rules of the autoscaler (``autoscaler.py``, ``controller._burst``) size prefill for
the most work that arrived in any TTFT-SLO window of the last ``peak_window_s``, then keep the
highest such need of the last ``peak_window_s`` and ``scale_down_delay_s``: three maxima over
a bursty stream (the Azure coding trace's 2-s bursts are about three times its mean). This
rule asks the question the SLO asks instead: the smallest total prefill rate ``C`` at which the
prompts of the last ``lookback_s``, replayed through the FIFO queue, would have had their time
to first token (wait + own prefill on one instance) within ``delay`` for a ``quantile`` of them
(the window reaches back further at low rates, until ``tail_samples`` prompts lie beyond the
quantile).

The wait of prompt i at rate C is Lindley's recursion in closed form, ``V_i = X_i -
min_{j<=i} X_j`` with ``X_j`` = work arrived before j minus ``C t_j``, and the share meeting
the bound is monotone in C, so a bisection finds it. Everything is over arrived requests only
(decides from the past). Used for mux groups and prefill pools (replayed one by one; the
batched services keep the window rules).
"""

from __future__ import annotations

import numpy as np

from computepool.serving.perf import Mix


def slo_rate(
    t: np.ndarray,
    work: np.ndarray,
    now: float,
    lookback_s: float,
    delay_s: float,
    own_rate: float,
    quantile: float,
    tail_samples: int = 0,
    iters: int = 14,
) -> float:
    """Smallest prefill rate (work per second, all instances) that would have met ``delay_s``
    for ``quantile`` of the prompts arrived in (now - lookback_s, now], the window reaching
    further back until ``tail_samples`` of them lie beyond the quantile (a stable estimate at
    low rates); 0 when none arrived."""
    a = int(np.searchsorted(t, now - lookback_s, side="right"))
    b = int(np.searchsorted(t, now, side="right"))
    if tail_samples > 0 and quantile < 1.0:
        a = max(min(a, b - int(np.ceil(tail_samples / (1.0 - quantile)))), 0)
    if b <= a or own_rate <= 0 or not np.isfinite(own_rate):
        return 0.0
    tt = t[a:b] - t[a]
    w = work[a:b]
    allowed = delay_s - w / own_rate  # the wait each prompt may have
    need = int(np.ceil(quantile * len(w) - 1e-9))
    if np.sort(allowed)[::-1][need - 1] < 0:  # beyond any rate: own prefill alone too slow
        return float("inf")
    before = np.cumsum(w) - w
    span = max(float(tt[-1]), 1e-9)
    lo, hi = float(w.sum()) / max(lookback_s, span), float(w.sum()) / max(delay_s, 1e-9)
    lo = max(lo, 1e-9)
    hi = max(hi, lo * 2.0)

    def ok(c: float) -> bool:
        x = before - c * tt
        wait = (x - np.minimum.accumulate(x)) / c
        return int(np.count_nonzero(wait <= allowed)) >= need

    if ok(lo):
        return lo
    while not ok(hi):
        hi *= 2.0
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def slo_need(
    t: np.ndarray, work: np.ndarray, now: float, mix: Mix, cap1: float, ttft_slo: float, cfg
) -> float:
    """``slo_rate`` as the request rate the autoscaler provisions for: instances = the
    result / ``cap1`` (one instance's request rate at the target utilisation and ``mix``, so
    its prefill FLOP/s are ``cap1 * P / target``); inf when no rate would have done."""
    p = max(mix.prefill_flops, 1.0)
    per_instance = cap1 * p / cfg.target_utilization
    c = slo_rate(
        t, work, now, cfg.sizing_lookback_s, cfg.sizing_delay_share * ttft_slo, per_instance,
        cfg.sizing_quantile, cfg.sizing_tail_samples,
    )  # fmt: skip
    return c / p * cfg.target_utilization


def queue_factor(cfg, ttft_slo: float) -> float:
    """The TTFT-burst term's work of a ``ttft_slo`` window is done within the window plus
    the ``ttft_queue_share`` of the SLO a prompt may queue for: a FIFO server of rate C keeps
    every wait within D when the work of any window of length L is at most C (L + D) (the
    network-calculus delay bound); the term checks L = the TTFT SLO."""
    return 1.0 / (1.0 + cfg.ttft_queue_share)


def with_history(
    hist: list[tuple[float, float]], now: float, need: float, history_s: float, quantile: float
) -> float:
    """Remember ``need`` at ``now`` in ``hist`` (times ascending) and return the larger of it
    and the ``quantile`` of the needs of the last ``history_s`` (``sizing_history_s``: a burst larger than the
    replayed window has seen keeps its size for hours; past needs only)."""
    hist.append((now, need))
    i = 0
    while i < len(hist) and hist[i][0] < now - history_s:
        i += 1
    del hist[:i]
    return max(need, float(np.quantile([v for _, v in hist], quantile)))


def past_needs(
    src, at: float, now: float, mix: Mix, cap1: float, ttft_slo: float, cfg
) -> list[tuple[float, float]]:
    """``slo_need`` of the previous period's replay ``src`` every half ``sizing_lookback_s``
    back from its end ``at`` over ``sizing_history_s``, as (time on the run's clock, need),
    oldest first (what the history holds when the run starts)."""
    step = 0.5 * cfg.sizing_lookback_s
    k = int(min(cfg.sizing_history_s, at) // step)
    out = []
    for j in range(k, 0, -1):
        need = slo_need(src.stream.t, src.flops, at - j * step, mix, cap1, ttft_slo, cfg)
        if np.isfinite(need):
            out.append((now - j * step, need))
    return out
