"""Request replay for one service: a fluid FIFO prefill queue and a decode-load model.

Time is cut into bins of ``bin_s``; in each bin the replicas that are ready give

* the decode utilisation ``rho = X / sum_g(n_g / k_g)`` (``X`` = output tokens/s over the
  last ``decode_window_s``, ``k_g`` = per-sequence step cost of shape g), the step time
  ``tau_g = a_g / (1 - rho)`` and the batch each replica holds (checked against its KV cache);
* the prefill capacity ``sum_g n_g * F_g * max(1 - tau_g / budget, floor)`` FLOP/s.

Prompts join one FIFO queue (the load balancer sends each to the replica that frees first).
With piecewise-constant capacity the queue is solved exactly in closed form: the work ahead of
request i is ``V_i = X_i - min(0, min_{j<=i} X_j)`` with the netput ``X`` just before each
arrival (Lindley's recursion as a running minimum), and its prefill starts when the cumulative
capacity has served ``V_i``. Its own prefill then runs on one replica. Everything is NumPy over
the requests of a round; requests still waiting at the end of a round carry over.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from computepool.serving.perf import Mix, PerfAssumptions, ShapeTable
from computepool.serving.streams import RequestStream


@dataclass(frozen=True)
class Group:
    """``count`` replicas of one shape that are ready from ``ready_at``."""

    shape: int
    count: int
    ready_at: float


@dataclass
class RoundStats:
    arrived: int = 0
    backlog_flops: float = 0.0
    queued: int = 0
    rho: float = 0.0


@dataclass
class ServiceReplay:
    stream: RequestStream
    flops: np.ndarray  # prefill FLOPs per request
    shapes: ShapeTable
    tbt_slo: float
    perf: PerfAssumptions
    bin_s: float = 2.0
    decode_window_s: float = 15.0
    #: Mix assumed while too few requests were seen (None: this stream's own means).
    prior: Mix | None = None
    ttft: np.ndarray = field(init=False)
    tbt: np.ndarray = field(init=False)
    next_i: int = 0
    backlog: float = 0.0
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    pending_left: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        n = len(self.stream)
        self.ttft = np.full(n, np.nan)
        self.tbt = np.full(n, np.nan)
        s = self.stream
        ctx = s.prompt + s.output / 2.0
        self._cum = {
            "n": np.arange(n + 1, dtype=np.float64),
            "flops": np.concatenate([[0.0], np.cumsum(self.flops)]),
            "out": np.concatenate([[0.0], np.cumsum(s.output)]),
            "ctx": np.concatenate([[0.0], np.cumsum(ctx)]),
        }
        self._mean_ctx = float(ctx.mean()) if n else 1.0
        self._mean_out = float(s.output.mean()) if n else 1.0
        self._mean_flops = float(self.flops.mean()) if n else 0.0

    # ---- load statistics (what a replica's /metrics would report) ------------------
    def window(self, t0: np.ndarray | float, t1: np.ndarray | float) -> dict[str, np.ndarray]:
        """Sums of requests arrived in (t0, t1]: count, FLOPs, output and context tokens."""
        a = np.searchsorted(self.stream.t, t0, side="right")
        b = np.searchsorted(self.stream.t, t1, side="right")
        return {k: v[b] - v[a] for k, v in self._cum.items()}

    def load(self, now: float, window_s: float, burst_s: float = 0.0) -> tuple[float, Mix]:
        """Request rate over the last ``window_s`` (the highest over its ``burst_s`` slices when
        given) and the mix (whole-stream means when the window is nearly empty)."""
        w = self.window(now - window_s, now)
        n = float(w["n"])
        if n < 5:
            mix = self.prior or self.mean_mix()
        else:
            mix = Mix(float(w["flops"]) / n, float(w["out"]) / n, float(w["ctx"]) / n)
        rate = n / window_s
        if 0 < burst_s < window_s:
            ends = now - burst_s * np.arange(int(window_s // burst_s))
            rate = max(rate, float(self.window(ends - burst_s, ends)["n"].max()) / burst_s)
        return rate, mix

    def mean_mix(self) -> Mix:
        """Means over the whole stream."""
        return Mix(self._mean_flops, self._mean_out, self._mean_ctx)

    def burst_flops_rate(self, t0: float, t1: float, width: float) -> float:
        """Highest prefill FLOPs per second arriving in any ``width``-second window inside
        (t0, t1] (windows start every ``width / 4`` seconds)."""
        if t1 - t0 < width:
            t0 = t1 - width
        ends = np.arange(t1, t0 + width - 1e-9, -width / 4.0)
        w = self.window(ends - width, ends)
        return float(w["flops"].max()) / width if len(ends) else 0.0

    # ---- one round ------------------------------------------------------------------
    def _bins(
        self, t0: float, t1: float, groups: list[Group]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Bin edges, prefill FLOP/s, per-replica prefill rate, decode step time, TBT budget."""
        k = max(1, int(np.ceil((t1 - t0) / self.bin_s - 1e-9)))
        edges = np.minimum(t0 + self.bin_s * np.arange(k + 1), t1)
        edges[-1] = t1
        budget = self.perf.tbt_budget * self.tbt_slo
        if not groups:
            z = np.zeros(k)
            return edges, z, z, np.full(k, np.inf), np.full(k, budget)
        sh = self.shapes
        g_shape = np.array([g.shape for g in groups], dtype=np.int64)
        n = np.array([g.count for g in groups], dtype=np.float64)[:, None] * (
            np.array([g.ready_at for g in groups])[:, None] <= edges[None, :-1] + 1e-9
        )
        w = self.window(edges[1:] - self.decode_window_s, edges[1:])
        x = w["out"] / self.decode_window_s
        cnt = w["n"]
        ctx = np.where(cnt > 0, w["ctx"] / np.maximum(cnt, 1), self._mean_ctx)
        kg = np.maximum(ctx[None, :] * sh.kvr[g_shape][:, None] + sh.c[g_shape][:, None], 1e-12)
        denom = (n / kg).sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = np.where(x > 0, x / denom, 0.0)
        a = sh.a[g_shape][:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            tau = np.where(rho < 1.0, a / np.maximum(1.0 - rho, 1e-12), np.inf)
            conc = rho * tau / kg
        kv_bad = (conc * ctx[None, :] > sh.kv_cap[g_shape][:, None]) & (n > 0)
        has = n > 0
        tau_max = np.where(has, tau, -np.inf).max(axis=0)
        tau_max = np.where(kv_bad.any(axis=0) | ~has.any(axis=0), np.inf, tau_max)
        share = np.maximum(1.0 - tau / budget, self.perf.prefill_floor)
        cap = (n * sh.flops[g_shape][:, None] * share).sum(axis=0)
        reps = n.sum(axis=0)
        r1 = np.where(reps > 0, cap / np.maximum(reps, 1e-9), 0.0)
        return edges, cap, r1, tau_max, np.full(k, budget)

    def advance(self, t0: float, t1: float, groups: list[Group]) -> RoundStats:
        """Replay requests arriving in [t0, t1) on ``groups``; resolve waits that end here."""
        if t1 <= t0:
            return RoundStats()
        edges, cap, r1, tau, budget = self._bins(t0, t1, groups)
        kcum = np.concatenate([[0.0], np.cumsum(cap * np.diff(edges))])
        total = float(kcum[-1])
        i0 = self.next_i
        i1 = int(np.searchsorted(self.stream.t, t1, side="left"))
        self.next_i = i1
        ta = self.stream.t[i0:i1]
        wk = self.flops[i0:i1]
        j = np.clip(np.searchsorted(edges, ta, side="right") - 1, 0, len(cap) - 1)
        binwork = np.bincount(j, weights=wk, minlength=len(cap))
        with np.errstate(divide="ignore", invalid="ignore"):
            busy = np.clip(np.where(cap > 0, binwork / (cap * np.diff(edges)), 1.0), 0.0, 1.0)
        busy = np.where(self.backlog > 0, 1.0, busy) if len(self.pending) else busy
        bins = (edges, r1, tau, budget, busy)
        # requests still waiting from earlier rounds are first in line
        done_p = self.pending_left < total
        if done_p.any():
            idx = self.pending[done_p]
            self._finish(idx, _invert(edges, kcum, cap, self.pending_left[done_p]), bins)
        self.pending = self.pending[~done_p]
        self.pending_left = self.pending_left[~done_p] - total
        if len(ta):
            k_at = np.interp(ta, edges, kcum)
            cs = np.cumsum(wk)
            x_before = self.backlog + (cs - wk) - k_at
            run_min = np.minimum(np.minimum.accumulate(x_before), 0.0)
            target = k_at + x_before - run_min
            ok = target < total
            idx = np.arange(i0, i1)
            if ok.any():
                start = np.maximum(_invert(edges, kcum, cap, target[ok]), ta[ok])
                self._finish(idx[ok], start, bins)
            self.pending = np.concatenate([self.pending, idx[~ok]])
            self.pending_left = np.concatenate([self.pending_left, target[~ok] - total])
            x_end = self.backlog + float(cs[-1]) - total
            self.backlog = x_end - min(0.0, float(run_min[-1]), x_end)
        else:
            self.backlog = max(0.0, self.backlog - total)
        finite = tau[np.isfinite(tau)]
        return RoundStats(
            arrived=i1 - i0,
            backlog_flops=self.backlog,
            queued=len(self.pending),
            rho=float(finite.max() / budget[0]) if len(finite) == len(tau) else float("inf"),
        )

    def _finish(self, idx: np.ndarray, start: np.ndarray, bins: tuple) -> None:
        """First token (and TBT, judged in the bin where decoding starts) of ``idx``."""
        edges, r1, tau, budget, busy = bins
        j = np.clip(np.searchsorted(edges, start, side="right") - 1, 0, len(r1) - 1)
        rate = r1[j]
        with np.errstate(divide="ignore"):
            own = np.where(rate > 0, self.flops[idx] / np.maximum(rate, 1e-9), np.inf)
        self.ttft[idx] = start - self.stream.t[idx] + own
        step = tau[j]
        with np.errstate(invalid="ignore"):
            mixed = step + busy[j] * (budget[j] - step)
        self.tbt[idx] = np.where(step <= budget[j], mixed, step)

    def close(self) -> None:
        """End of the horizon: requests still waiting never got a first token."""
        self.ttft[self.pending] = np.inf
        self.tbt[self.pending] = np.inf
        self.ttft[self.next_i :] = np.inf
        self.tbt[self.next_i :] = np.inf
        self.pending = self.pending[:0]


def _invert(edges: np.ndarray, kcum: np.ndarray, cap: np.ndarray, y: np.ndarray) -> np.ndarray:
    """First times at which cumulative capacity reaches ``y`` with capacity on (a level
    reached before a stretch without replicas is served when replicas are back)."""
    j = np.searchsorted(kcum, y, side="right")
    j = np.clip(j, 1, len(kcum) - 1)
    base = kcum[j - 1]
    rate = cap[j - 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        dt = np.where(rate > 0, (y - base) / rate, 0.0)
    return edges[j - 1] + dt


def attainment(ttft: np.ndarray, tbt: np.ndarray, ttft_slo: float, tbt_slo: float) -> np.ndarray:
    """Per request: both SLOs met (NaN counts as missed)."""
    with np.errstate(invalid="ignore"):
        return (ttft <= ttft_slo) & (tbt <= tbt_slo)
