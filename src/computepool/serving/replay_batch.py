"""``ServiceReplay.advance`` for many services at once (NumPy over services, bins and requests).

Same model and the same arithmetic as ``replay.py`` (a test compares both paths); what the
per-service path does with one call per service and bin array, this does once per round with
(services x bins) arrays and the replicas of all services flattened into one list of groups.
The per-service running sums of the FIFO queue (``cumsum`` and ``minimum.accumulate`` of each
service's arrivals) run along the rows of a padded (services x requests) matrix.

Each replay's ``ttft``/``tbt`` become views of this object's arrays, and its ``next_i`` and
``backlog`` are written back every round, so the controller and the results read them as
before. Requests are located with one ``searchsorted`` over keys ``service * KEY + t``.
"""

from __future__ import annotations

import numpy as np

from computepool.serving.perf import Mix, ShapeTable, capacity_arrays
from computepool.serving.replay import Group, ServiceReplay

#: Keys fold the service into the arrival time: exact for horizons below 2**26 s.
KEY = float(2**26)


def _ranges(start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(start[i], start[i] + length[i])``."""
    total = int(length.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.cumsum(length) - length
    return np.repeat(start - first, length) + np.arange(total)


class ReplayBatch:
    def __init__(self, replays: list[ServiceReplay]) -> None:
        self.replays = replays
        r0 = replays[0]
        self.bin_s, self.perf = r0.bin_s, r0.perf
        n = np.array([len(r.stream) for r in replays], dtype=np.int64)
        self.n = n
        self.off = np.r_[0, np.cumsum(n)].astype(np.int64)
        self.coff = np.r_[0, np.cumsum(n + 1)].astype(np.int64)
        S = len(replays)
        self.t = np.concatenate([r.stream.t for r in replays])
        self.keys = np.repeat(np.arange(S) * KEY, n) + self.t
        self.flops = np.concatenate([r.flops for r in replays])
        # the count's running sum is the position itself: "n" sums are ``b - a`` (exact)
        self.cum = {
            k: np.concatenate([r._cum[k] for r in replays]) for k in ("flops", "out", "ctx")
        }
        self.priors = [r.prior or r.mean_mix() for r in replays]
        # every service's shapes in one table, for capacity_rps over all of them at once
        self.shape_sid = np.repeat(np.arange(len(replays)), [len(r.shapes) for r in replays])
        self.shape_off = np.r_[0, np.cumsum([len(r.shapes) for r in replays])].astype(np.int64)
        self.shapes = _concat_shapes([r.shapes for r in replays])
        self.tbt_slo = np.array([r.tbt_slo for r in replays])
        t = self.shapes
        self._group_cols = np.stack([t.a, t.kvr, t.c, t.kv_cap, t.flops], axis=1).astype(np.float64)
        self.dw = np.array([r.decode_window_s for r in replays])
        self.budget = np.array([r.perf.tbt_budget * r.tbt_slo for r in replays])
        self.mean_ctx = np.array([r._mean_ctx for r in replays])
        self.ttft = np.concatenate([r.ttft for r in replays])
        self.tbt = np.concatenate([r.tbt for r in replays])
        for s, r in enumerate(replays):
            r.ttft = self.ttft[self.off[s] : self.off[s + 1]]
            r.tbt = self.tbt[self.off[s] : self.off[s + 1]]
        self.next_i = np.array([r.next_i for r in replays], dtype=np.int64)
        self.backlog = np.array([r.backlog for r in replays], dtype=np.float64)
        self.p_idx = np.concatenate([r.pending + self.off[s] for s, r in enumerate(replays)])
        self.p_sid = np.repeat(np.arange(S), [len(r.pending) for r in replays])
        self.p_left = np.concatenate([r.pending_left for r in replays])
        self._sids = np.arange(S, dtype=np.float64)[:, None] * KEY
        # (width, field) -> (ascending window ends, (S, m) sums) of the last ``_windows_at``
        self._win_cache: dict[tuple[float, str], tuple[np.ndarray, np.ndarray]] = {}

    def _pos(self, q: np.ndarray, side: str) -> np.ndarray:
        """Local index per service of ``searchsorted(stream.t, q[s], side)``; q is (S, m)."""
        g = np.searchsorted(self.keys, self._sids + q, side=side)
        return g - self.off[:-1, None]

    def _window(
        self, lo: np.ndarray, hi: np.ndarray, keys: tuple[str, ...] = ("n", "flops", "out", "ctx")
    ) -> dict[str, np.ndarray]:
        """(S, m) sums (of ``keys`` only) of the requests arrived in (lo, hi] per service
        (``ServiceReplay.window`` per row). A few windows per service are searched for in all
        requests; many (ascending along a row is fastest) in the requests between min(lo) and
        max(hi) only."""
        if lo.shape[1] <= 32:
            a = np.searchsorted(self.keys, self._sids + lo, side="right")
            b = np.searchsorted(self.keys, self._sids + hi, side="right")
            d = (self.coff[:-1] - self.off[:-1])[:, None]  # into the cumulative sums
            a, b = a + d, b + d
            return _sums(self.cum, a, b, keys)
        q = np.array([[lo.min(), hi.max()]])
        g = np.searchsorted(self.keys, self._sids + q, side="right")  # (S, 2) global
        start, length = g[:, 0], g[:, 1] - g[:, 0]
        sub = self.keys[_ranges(start, length)]
        seg = np.cumsum(length) - length  # where each service's requests start in ``sub``
        a = np.searchsorted(sub, self._sids + lo, side="right")
        b = np.searchsorted(sub, self._sids + hi, side="right")
        # back to global positions, then into each service's cumulative sums
        base = (start - seg + (self.coff[:-1] - self.off[:-1]))[:, None]
        a, b = a + base, b + base
        return _sums(self.cum, a, b, keys)

    def _windows_at(self, ends: np.ndarray, width: float, key: str) -> np.ndarray:
        """``_window(ends - width, ends, (key,))[key]`` for the same ascending ``ends`` in every
        row, (S, m).

        Sums already taken for the same (width, key, end) in the previous call are reused
        (the windows of consecutive rounds overlap: the TTFT-burst windows of the last
        ``peak_window_s`` slide by one interval a round); the others are searched for. A sum
        depends only on its window, so the result is the direct computation's, bit for bit."""
        S = len(self.replays)
        old = self._win_cache.get((width, key))
        hit = np.zeros(len(ends), dtype=bool)
        if old is not None and len(old[0]):
            old_ends, old_vals = old
            pos = np.minimum(np.searchsorted(old_ends, ends), len(old_ends) - 1)
            hit = old_ends[pos] == ends
        if hit.all():
            out = old_vals[:, pos]
        else:
            out = np.empty((S, len(ends)))
            if hit.any():
                out[:, hit] = old_vals[:, pos[hit]]
            miss = ~hit
            e = np.broadcast_to(ends[miss], (S, int(miss.sum())))
            out[:, miss] = self._window(e - width, e, (key,))[key]
        self._win_cache[(width, key)] = (ends, out)
        return out

    def observe(
        self, now: float, window_s: float, burst_s: float, peak_s: float, ttft: np.ndarray
    ) -> tuple[np.ndarray, list[Mix], np.ndarray]:
        """Per service: ``ServiceReplay.load(now, window_s, burst_s)`` (rate, mix) and
        ``burst_flops_rate(now - peak_s, now, ttft[s])``, from a few calls over all services."""
        S = len(self.replays)
        ends = np.zeros(0)
        if 0 < burst_s < window_s:
            ends = now - burst_s * np.arange(int(window_s // burst_s))
        # the load window's and the burst slices' bounds (mostly the same points), searched once
        m = len(ends)
        pts, inv = np.unique(np.r_[now - window_s, now, ends, ends - burst_s], return_inverse=True)
        g = np.searchsorted(self.keys, self._sids + pts, side="right")
        g = g + (self.coff[:-1] - self.off[:-1])[:, None]  # into the cumulative sums
        w = _sums(self.cum, g[:, inv[:1]], g[:, inv[1:2]], ("n", "flops", "out", "ctx"))
        n = w["n"][:, 0]
        rate = n / window_s
        if m:
            n_b = (g[:, inv[2 : 2 + m]] - g[:, inv[2 + m :]]).astype(np.float64)
            rate = np.maximum(rate, n_b.max(axis=1) / burst_s)
        with np.errstate(divide="ignore", invalid="ignore"):
            fl, out, ctx = (w[k][:, 0] / n for k in ("flops", "out", "ctx"))
        mixes = [self.priors[s] if n[s] < 5 else Mix(fl[s], out[s], ctx[s]) for s in range(S)]
        burst = np.zeros(S)
        for width in sorted(set(ttft.tolist())):
            rows = np.nonzero(ttft == width)[0]
            t0, t1 = now - peak_s, now
            if t1 - t0 < width:
                t0 = t1 - width
            ends = np.arange(t1, t0 + width - 1e-9, -width / 4.0)[::-1]  # ascending: faster
            if len(ends) == 0:
                continue
            f = self._windows_at(ends, float(width), "flops") / width
            burst[rows] = f.max(axis=1)[rows]
        return rate, mixes, burst

    def capacity(self, mixes: list[Mix], util: float) -> list[np.ndarray]:
        """``capacity_rps`` of every service's shapes at its mix, in one call."""
        sid = self.shape_sid
        ctx = np.array([m.context_tokens for m in mixes])[sid]
        out = np.array([m.output_tokens for m in mixes])[sid]
        pf = np.array([m.prefill_flops for m in mixes])[sid]
        cap = capacity_arrays(self.shapes, pf, out, ctx, self.tbt_slo[sid], util, self.perf)
        return [cap[self.shape_off[s] : self.shape_off[s + 1]] for s in range(len(mixes))]

    def _bins(self, t0: float, t1: float, groups: list[list[Group]]):
        k = max(1, int(np.ceil((t1 - t0) / self.bin_s - 1e-9)))
        edges = np.minimum(t0 + self.bin_s * np.arange(k + 1), t1)
        edges[-1] = t1
        S = len(self.replays)
        rows = [(s, g.shape, g.count, g.ready_at) for s, gs in enumerate(groups) for g in gs]
        cap = np.zeros((S, k))
        reps = np.zeros((S, k))
        tau_max = np.full((S, k), -np.inf)
        kv_any = np.zeros((S, k), dtype=bool)
        if rows:
            info = np.array(rows, dtype=np.float64)  # (groups, 4): service, shape, count, ready
            gs = info[:, 0].astype(np.int64)
            k_idx = self.shape_off[gs] + info[:, 1].astype(np.int64)
            tab = self._group_cols[k_idx]  # a, kvr, c, kv_cap, flops of each group's shape
            a, kvr, c, kvc, fl = (tab[:, i : i + 1] for i in range(5))
            cnt, ready = info[:, 2:3], info[:, 3:4]
            n = cnt * (ready <= edges[None, :-1] + 1e-9)
            hi = np.broadcast_to(edges[1:], (S, k))
            w = self._window(hi - self.dw[:, None], hi, ("n", "out", "ctx"))
            x = w["out"] / self.dw[:, None]
            nreq = w["n"]
            ctx = np.where(nreq > 0, w["ctx"] / np.maximum(nreq, 1), self.mean_ctx[:, None])
            cg = ctx[gs]
            kg = np.maximum(cg * kvr + c, 1e-12)
            denom = np.zeros((S, k))
            np.add.at(denom, gs, n / kg)
            with np.errstate(divide="ignore", invalid="ignore"):
                rho = np.where(x > 0, x / denom, 0.0)[gs]
                tau = np.where(rho < 1.0, a / np.maximum(1.0 - rho, 1e-12), np.inf)
                conc = rho * tau / kg
            np.logical_or.at(kv_any, gs, (conc * cg > kvc) & (n > 0))
            np.maximum.at(tau_max, gs, np.where(n > 0, tau, -np.inf))
            share = np.maximum(1.0 - tau / self.budget[gs][:, None], self.perf.prefill_floor)
            np.add.at(cap, gs, n * fl * share)
            np.add.at(reps, gs, n)
        tau_max = np.where(kv_any | (reps <= 0), np.inf, tau_max)
        r1 = np.where(reps > 0, cap / np.maximum(reps, 1e-9), 0.0)
        return edges, cap, r1, tau_max

    def advance(self, t0: float, t1: float, groups: list[list[Group]]) -> None:
        """``ServiceReplay.advance(t0, t1, groups[s])`` for every service s."""
        if t1 <= t0:
            return
        edges, cap, r1, tau = self._bins(t0, t1, groups)
        S, k = cap.shape
        width = np.diff(edges)
        kcum = np.concatenate([np.zeros((S, 1)), np.cumsum(cap * width, axis=1)], axis=1)
        total = kcum[:, -1]
        i0 = self.next_i
        i1 = self._pos(np.full((S, 1), t1), "left")[:, 0]
        self.next_i = i1
        length = i1 - i0
        idx = _ranges(self.off[:-1] + i0, length)
        rs = np.repeat(np.arange(S), length)  # each arrival's service (idx is in service order)
        ta, wk = self.t[idx], self.flops[idx]
        j = np.minimum(np.maximum(np.searchsorted(edges, ta, side="right") - 1, 0), k - 1)
        binwork = np.bincount(rs * k + j, weights=wk, minlength=S * k).reshape(S, k)
        with np.errstate(divide="ignore", invalid="ignore"):
            busy = np.clip(np.where(cap > 0, binwork / (cap * width), 1.0), 0.0, 1.0)
        waiting = np.bincount(self.p_sid, minlength=S) > 0
        busy = np.where((waiting & (self.backlog > 0))[:, None], 1.0, busy)
        bins = (edges, r1, tau, busy)
        # requests still waiting from earlier rounds are first in line
        done = self.p_left < total[self.p_sid]
        if done.any():
            ps = self.p_sid[done]
            start = _invert(edges, kcum, cap, ps, self.p_left[done])
            self._finish(self.p_idx[done], ps, start, bins)
        keep = ~done
        self.p_idx, self.p_sid = self.p_idx[keep], self.p_sid[keep]
        self.p_left = self.p_left[keep] - total[self.p_sid]
        backlog = np.maximum(0.0, self.backlog - total)
        if len(idx):
            jj = j  # each arrival's bin
            x0, x1 = edges[jj], edges[jj + 1]
            y0, y1 = kcum[rs, jj], kcum[rs, jj + 1]
            slope = (y1 - y0) / (x1 - x0)
            k_at = np.where(ta == x0, y0, slope * (ta - x0) + y0)
            # each service's running sums along one row of a padded (services x requests)
            # matrix: the same sequential sums as one call per service
            act = np.nonzero(length)[0]
            ln = length[act]
            row = np.repeat(np.arange(len(act)), ln)
            col = np.arange(len(idx)) - np.repeat(np.cumsum(ln) - ln, ln)
            pad = np.zeros((len(act), int(ln.max())))
            pad[row, col] = wk
            cs = np.cumsum(pad, axis=1)[row, col]
            x_before = self.backlog[rs] + (cs - wk) - k_at
            pad.fill(np.inf)
            pad[row, col] = x_before
            run_min = np.minimum(np.minimum.accumulate(pad, axis=1), 0.0)[row, col]
            last = np.cumsum(ln) - 1
            x_end = self.backlog[act] + cs[last] - total[act]
            backlog[act] = x_end - np.minimum(np.minimum(0.0, run_min[last]), x_end)
            target = k_at + x_before - run_min
            ok = target < total[rs]
            if ok.any():
                start = np.maximum(_invert(edges, kcum, cap, rs[ok], target[ok]), ta[ok])
                self._finish(idx[ok], rs[ok], start, bins)
            self.p_idx = np.concatenate([self.p_idx, idx[~ok]])
            self.p_sid = np.concatenate([self.p_sid, rs[~ok]])
            self.p_left = np.concatenate([self.p_left, target[~ok] - total[rs[~ok]]])
        self.backlog = backlog
        for r, i, b in zip(self.replays, i1.tolist(), backlog.tolist(), strict=True):
            r.next_i = i
            r.backlog = b

    def _finish(self, idx, sid, start, bins) -> None:
        edges, r1, tau, busy = bins
        k = r1.shape[1]
        j = np.minimum(np.maximum(np.searchsorted(edges, start, side="right") - 1, 0), k - 1)
        rate = r1[sid, j]
        with np.errstate(divide="ignore"):
            own = np.where(rate > 0, self.flops[idx] / np.maximum(rate, 1e-9), np.inf)
        self.ttft[idx] = start - self.t[idx] + own
        step = tau[sid, j]
        budget = self.budget[sid]
        with np.errstate(invalid="ignore"):
            mixed = step + busy[sid, j] * (budget - step)
        self.tbt[idx] = np.where(step <= budget, mixed, step)

    def close(self) -> None:
        """Requests still waiting never got a first token (each replay's ``close`` does the
        rest)."""
        self.ttft[self.p_idx] = np.inf
        self.tbt[self.p_idx] = np.inf
        self.p_idx = self.p_idx[:0]
        self.p_sid = self.p_sid[:0]
        self.p_left = self.p_left[:0]


def _sums(
    cum: dict[str, np.ndarray], a: np.ndarray, b: np.ndarray, keys: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Sums of ``keys`` between positions a and b of the running sums (the count: b - a)."""
    return {k: (b - a).astype(np.float64) if k == "n" else cum[k][b] - cum[k][a] for k in keys}


def _invert(
    edges: np.ndarray, kcum: np.ndarray, cap: np.ndarray, rows: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """``replay._invert`` of each ``y`` in its row of ``kcum``/``cap`` (``rows``), by flat
    indices into the (services x bins) tables rather than copied rows."""
    K = kcum.shape[1]
    j = (kcum[rows] <= y[:, None]).sum(axis=1)
    jm = np.minimum(np.maximum(j, 1), K - 1) - 1
    base = kcum.ravel()[rows * K + jm]
    rate = cap.ravel()[rows * (K - 1) + jm]
    with np.errstate(divide="ignore", invalid="ignore"):
        dt = np.where(rate > 0, (y - base) / rate, 0.0)
    return edges[jm] + dt


def _concat_shapes(tables: list[ShapeTable]) -> ShapeTable:
    fields = [f for f in ShapeTable.__dataclass_fields__ if f != "names"]
    return ShapeTable(
        **{f: np.concatenate([getattr(t, f) for t in tables]) for f in fields},
        names=tuple(n for t in tables for n in t.names),
    )
