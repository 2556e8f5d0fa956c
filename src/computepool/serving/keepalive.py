"""Per-model keep-alive from each model's own past idle times (``serving.keep_alive_policy:
histogram``).

Follows the hybrid histogram policy of Shahrad et al., "Serverless in the Wild" (ATC'20, Azure
Functions): per application, a histogram of its idle times (the gaps between consecutive
invocations) over a past window; the keep-alive window is a high percentile of it (their 99th,
plus a margin), and when the histogram is not representative (too few idle times, or its
percentile beyond the histogram's range: an "out-of-bound" application) a fallback takes over
(theirs: a time-series forecast; here: the fixed ``keep_alive_s``). Their pre-warm window (the
5th percentile: unload right after use and load again just before the expected next request)
is not modelled: for the request streams here the idle-time histograms start at zero (Poisson-
like arrivals, no timers), so it would be zero.

Past only: the keep-alive of a model in epoch ``e`` (``epoch_s`` long) is computed from the idle
times that *ended* within ``window_s`` before the epoch starts (the previous period's requests
included, placed before t = 0), so no decision reads a request that has not arrived.
A model is resident at time ``tau`` while ``tau - last use <= keep_alive(epoch of tau)``; a
request is cold when its model was evicted at some point of the gap (checked in the gap's first
and last epoch: exact for gaps spanning at most two epochs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KeepAliveTable:
    """Keep-alive seconds per (epoch, member); epoch ``e`` covers [e * epoch_s, (e+1) * epoch_s)
    of the replay's clock (clamped to the first and last epoch)."""

    epoch_s: float
    ka: np.ndarray  # (epochs, members)

    def epoch(self, t: np.ndarray) -> np.ndarray:
        e = np.floor(np.asarray(t, dtype=np.float64) / self.epoch_s).astype(np.int64)
        return np.clip(e, 0, self.ka.shape[0] - 1)

    def at(self, now: float) -> np.ndarray:
        """(members,) keep-alive at ``now``: the larger of this epoch's and the previous one's
        (a model idle since the previous epoch may still be resident under its rule; the
        memory floor counts it: pessimistic)."""
        e = int(self.epoch(np.array([now]))[0])
        return np.maximum(self.ka[e], self.ka[max(e - 1, 0)])


def fixed(keep_alive_s: float, members: int) -> KeepAliveTable:
    return KeepAliveTable(1e12, np.full((1, members), float(keep_alive_s)))


def idle_times(
    t: np.ndarray, member: np.ndarray, members: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per member: (end times, lengths) of its idle times, by end time."""
    order = np.lexsort((t, member))
    ts, ms = t[order], member[order]
    out = []
    bounds = np.searchsorted(ms, np.arange(members + 1))
    for m in range(members):
        x = ts[bounds[m] : bounds[m + 1]]
        out.append((x[1:], np.diff(x)))
    return out


def histogram_table(
    t: np.ndarray,
    member: np.ndarray,
    members: int,
    horizon: float,
    cfg,
    past_t: np.ndarray | None = None,
    past_member: np.ndarray | None = None,
    past_span: float = 0.0,
) -> KeepAliveTable:
    """Keep-alive per epoch and member from the idle times before each epoch (``cfg``:
    ``keep_alive_s`` the fallback, ``keep_alive_quantile``, ``keep_alive_margin``,
    ``keep_alive_max_s`` the histogram's range, ``keep_alive_min_samples``,
    ``keep_alive_window_s``, ``keep_alive_epoch_s``). ``past_*``: the previous period's
    requests, ``past_span`` seconds long, ending at t = 0."""
    if past_t is not None and len(past_t):
        t = np.concatenate([np.asarray(past_t) - past_span, t])
        member = np.concatenate([np.asarray(past_member), member])
    epoch_s = float(cfg.keep_alive_epoch_s)
    k = max(int(np.ceil(horizon / epoch_s - 1e-9)), 1)
    starts = epoch_s * np.arange(k)
    ka = np.full((k, members), float(cfg.keep_alive_s))
    for m, (end, gap) in enumerate(idle_times(t, member, members)):
        a = np.searchsorted(end, starts - cfg.keep_alive_window_s, side="left")
        b = np.searchsorted(end, starts, side="left")
        for e in range(k):
            g = gap[a[e] : b[e]]
            if len(g) < cfg.keep_alive_min_samples:
                continue  # not representative: the fixed keep-alive
            v = float(np.quantile(g, cfg.keep_alive_quantile)) * (1.0 + cfg.keep_alive_margin)
            if v <= cfg.keep_alive_max_s:  # else out of the histogram's range: fixed
                ka[e, m] = v
    return KeepAliveTable(epoch_s, ka)


def cold_flags_table(t: np.ndarray, member: np.ndarray, table: KeepAliveTable) -> np.ndarray:
    """Per request (sorted by time): its model was evicted during the gap since its last use
    (or it has none): evicted in the gap's first epoch (up to that epoch's end) or at the
    request's arrival under its epoch's keep-alive."""
    cold = np.ones(len(t), dtype=bool)
    if len(t) == 0:
        return cold
    order = np.lexsort((t, member))
    ts, ms = t[order], member[order]
    same = np.r_[False, ms[1:] == ms[:-1]]
    last = np.r_[-np.inf, ts[:-1]]
    gap = ts - last
    e1 = table.epoch(np.where(same, last, ts))
    e2 = table.epoch(ts)
    ka1, ka2 = table.ka[e1, ms], table.ka[e2, ms]
    end1 = (e1 + 1) * table.epoch_s
    first = np.minimum(gap, np.where(e1 == e2, gap, end1 - last))
    cold[order] = ~same | (first > ka1) | (gap > ka2)
    return cold
