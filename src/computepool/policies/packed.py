"""Space sharing: heterogeneity-aware max-min fairness where two jobs may share one set of
accelerators (``las-packed``, Gavel's ``max_min_fairness_packed``).

A pair's speed comes from Gavel's measured pair table (``Throughputs.pairs``; the scheduler
passes it as ``extras["pair_rates"]``, a (C, C, F) array: rate of class ``a`` while it shares a
device of flavor ``f`` with class ``b``, 0 where not measured, out of memory or scale factors
differ). Only jobs with the same scale factor share, one pair per device set.

The LP is written per *partner class*, not per job pair (Gavel's job-type formulation), so its size
is ``rows x classes x flavors`` instead of ``rows^2 x flavors``:

* ``y[g, f]``: per-job time alone on ``f``; ``p[g, b, f]``: per-job time on ``f`` sharing with some
  job of class ``b``;
* each job: ``sum y + sum p <= 1``; throughput ``sum_f T y + sum_{b,f} P[class, b, f] p``;
* capacity: ``sum count * sf * y + 1/2 * sum count * sf * p <= capacity`` (a pair is one device set);
* pairing balances: for classes ``a != b``, the time class-``a`` jobs spend with ``b`` equals the
  time ``b`` jobs spend with ``a`` (``sum_{g in a} count_g p[g, b, f] = sum_{h in b} count_h p[h, a, f]``);
  within one class no job may hold more than half its class's pairing time
  (``p[g, a, f] <= S[a, f] / 2``; so a lone job of a class never pairs with itself);
* ``max t`` with every group's normalised throughput ``>= t`` (the same normalisation as ``las``).

Any solution decomposes into job pairs (``decompose``): a north-west-corner walk per class pair
(and a half-turn rotation within a class) gives at most ``|a| + |b|`` pairs instead of Gavel's
``|a| * |b|`` product split; each job's pairing time is kept exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from computepool.model.allocation import Allocation, PairShares
from computepool.policies.base import PolicyInput
from computepool.policies.lp import (
    INF,
    IPM_CENTRE,
    LP,
    VERTEX_FIRST,
    LPError,
    csc_from_triplets,
    solve,
    solve_robust,
)
from computepool.policies.max_min import max_min_coefficients, size_weights
from computepool.policies.pop import pop_allocate
from computepool.policies.shares import group_rows

#: Per-job shares below this are dropped when turning the LP into pairs.
PAIR_TOL = 1e-4


@dataclass(frozen=True)
class PackedSolution:
    single: np.ndarray  # (G, F) per-job time alone
    paired: np.ndarray  # (G, K, F) per-job time shared with a job of partner class K
    partner_class: np.ndarray  # (K,) class index of each partner column
    value: float


def pair_mask(
    feas: np.ndarray, cls: np.ndarray, count: np.ndarray, pair_rates: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(G, K, F) bool: group ``g`` may share flavor ``f`` with a job of partner class ``K[k]``;
    and the partner classes ``K`` (the classes of the groups)."""
    K = np.unique(cls)
    kpos = np.searchsorted(K, cls)
    fwd = pair_rates[cls][:, K, :] > 0  # (G, K, F) rate of g next to K
    back = np.transpose(pair_rates[K][:, cls, :], (1, 0, 2)) > 0  # rate of K next to g
    # partners available: rows of class K legal on f (>= 2 of them within g's own class)
    avail = np.zeros((len(K), feas.shape[1]))
    np.add.at(avail, kpos, feas * count[:, None])
    need = np.ones((len(cls), len(K)))
    need[np.arange(len(cls)), kpos] = 2.0
    ok = avail[None, :, :] >= need[:, :, None]
    return feas[:, None, :] & fwd & back & ok, K


def packed_lp(
    coef: np.ndarray,
    norm: np.ndarray,
    cls: np.ndarray,
    count: np.ndarray,
    scale_factor: np.ndarray,
    capacity: np.ndarray,
    pair_rates: np.ndarray,
    fill: bool = False,
) -> PackedSolution:
    """Solve the partner-class LP (module docstring). ``coef`` (G, F) is each group's normalised
    single throughput, ``norm`` (G,) the factor that normalises a raw rate. ``fill``: a second LP
    keeps the optimal minimum and maximises the groups' total (as ``max_min.max_min_lp``)."""
    G, F = coef.shape
    feas = coef > 0
    mask, K = pair_mask(feas, cls, count, pair_rates)
    yg, yf = np.nonzero(feas)
    pg, pk, pf = np.nonzero(mask)
    ny, npv = len(yg), len(pg)
    pcol = ny + np.arange(npv)
    # same-class pairing: one total S[a, f] per (class, flavor) that has such variables
    same = K[pk] == cls[pg]
    skey = pk[same] * F + pf[same]
    s_keys, s_of = np.unique(skey, return_inverse=True)
    ns = len(s_keys)
    s_col0 = ny + npv
    t_col = s_col0 + ns
    num_col = t_col + 1
    cnt = count.astype(np.float64)
    sf = scale_factor.astype(np.float64)
    prate = pair_rates[cls[pg], K[pk], pf]
    # rows: time (G) | capacity (F) | objective (G) | balance | same-class total | same-class cap
    r_cap, r_obj = G, G + F
    r_bal = G + F + G
    a, b = cls[pg], K[pk]
    cross = ~same
    bkey = (np.minimum(a, b) * pair_rates.shape[0] + np.maximum(a, b)) * F + pf
    b_keys, b_of = np.unique(bkey[cross], return_inverse=True)
    nb = len(b_keys)
    r_sum = r_bal + nb
    r_scap = r_sum + ns
    n_same = int(same.sum())
    num_row = r_scap + n_same
    rows = [yg, r_cap + yf, r_obj + yg, pg, r_cap + pf, r_obj + pg]
    cols = [np.arange(ny)] * 3 + [pcol] * 3
    vals = [
        np.ones(ny),
        cnt[yg] * sf[yg],
        coef[yg, yf],
        np.ones(npv),
        0.5 * cnt[pg] * sf[pg],
        norm[pg] * prate,
    ]
    sign = np.where(a[cross] < b[cross], 1.0, -1.0)
    rows += [r_bal + b_of, r_sum + s_of, r_scap + np.arange(n_same), r_scap + np.arange(n_same)]
    cols += [pcol[cross], pcol[same], pcol[same], s_col0 + s_of]
    vals += [sign * cnt[pg[cross]], cnt[pg[same]], np.ones(n_same), np.full(n_same, -0.5)]
    rows += [r_sum + np.arange(ns), r_obj + np.arange(G)]
    cols += [s_col0 + np.arange(ns), np.full(G, t_col)]
    vals += [np.full(ns, -1.0), -np.ones(G)]
    start, index, value = csc_from_triplets(
        np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), num_col
    )
    row_lo = np.concatenate(
        [np.full(G + F, -INF), np.zeros(G), np.zeros(nb + ns), np.full(n_same, -INF)]
    )
    row_hi = np.concatenate(
        [np.ones(G), capacity.astype(np.float64), np.full(G, INF), np.zeros(nb + ns + n_same)]
    )
    cost = np.zeros(num_col)
    cost[t_col] = 1.0
    lp = LP(cost, np.zeros(num_col), np.full(num_col, INF), row_lo, row_hi, start, index, value)
    assert lp.num_row == num_row
    # IPX may stop short on the degenerate balance rows: take a vertex (the simplex first)
    sol = solve_robust(lp, IPM_CENTRE, fallbacks=VERTEX_FIRST)[0]
    if not sol.optimal:
        raise LPError(f"packed max-min LP: {sol.status}")
    t = float(sol.x[t_col])
    if fill and t > 0:
        cost2 = np.zeros(num_col)
        cost2[:ny] = cnt[yg] * coef[yg, yf] / t
        cost2[ny : ny + npv] = cnt[pg] * norm[pg] * prate / t
        lo, hi = np.zeros(num_col), np.full(num_col, INF)
        lo[t_col] = hi[t_col] = t * (1.0 - 1e-6)
        # the fill presses on the capacity rows; ``within_capacity`` trims the interior
        # point's tolerance afterwards
        sol2 = solve(
            LP(cost2, lo, hi, row_lo, row_hi, start, index, value), method="ipm", crossover=False
        )
        if sol2.optimal:
            sol = sol2
    x = np.clip(sol.x, 0.0, 1.0)
    single = np.zeros((G, F))
    single[yg, yf] = x[:ny]
    paired = np.zeros((G, len(K), F))
    paired[pg, pk, pf] = x[ny : ny + npv]
    return PackedSolution(single, paired, K, float(sol.x[t_col]))


def _expand(
    g: np.ndarray, mass: np.ndarray, combo: np.ndarray, inverse: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-group entries -> per-row entries (row, mass x the row's ``scale``, combo), sorted by
    combo then row."""
    G = int(inverse.max()) + 1 if len(inverse) else 0
    order = np.argsort(inverse, kind="stable")
    cnt = np.bincount(inverse, minlength=G)
    first = np.concatenate([[0], np.cumsum(cnt)[:-1]])
    k = cnt[g]
    rep = np.repeat(np.arange(len(g)), k)
    within = np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k)
    rows = order[first[g][rep] + within]
    out_c, out_r, out_m = combo[rep], rows, mass[rep] * scale[rows]
    srt = np.lexsort((out_r, out_c))
    return out_r[srt], out_m[srt], out_c[srt]


def decompose(
    sol: PackedSolution,
    inverse: np.ndarray,
    cls_of_group: np.ndarray,
    scale: np.ndarray | None = None,
) -> PairShares:
    """Job pairs (row indices) realising the per-job pairing times of ``sol`` (times ``scale``
    per row when given: rows aggregated by weight).

    For each (class a <= class b, flavor) the rows of ``a`` (masses = their time with ``b``) and
    of ``b`` are laid end to end on two rulers of equal length and cut where either changes (the
    north-west corner rule of the transportation problem): at most ``|a| + |b|`` pairs. Within one
    class the second ruler is the first turned by half its length, which never meets a row with
    itself because no row holds more than half its class's pairing time. All (class pair,
    flavor) cases are done at once on one long ruler.
    """
    G, K, F = sol.paired.shape
    kpos = np.searchsorted(sol.partner_class, cls_of_group)
    g, k, f = np.nonzero(sol.paired > PAIR_TOL)
    m = sol.paired[g, k, f]
    kg = kpos[g]
    half = np.where(kg == k, 0.5, 1.0)
    left = kg <= k  # class(g) is the combo's first class
    right = kg >= k
    lc = (kg * K + k) * F + f
    rc = (k * K + kg) * F + f
    sc = np.ones(len(inverse)) if scale is None else scale
    lr, lm, lcb = _expand(g[left], (m * half)[left], lc[left], inverse, sc)
    rr, rm, rcb = _expand(g[right], (m * half)[right], rc[right], inverse, sc)
    both = np.intersect1d(lcb, rcb)
    keep_l, keep_r = np.isin(lcb, both), np.isin(rcb, both)
    lr, lm, lcb = lr[keep_l], lm[keep_l], lcb[keep_l]
    rr, rm, rcb = rr[keep_r], rm[keep_r], rcb[keep_r]
    if len(both) == 0:
        return PairShares.empty()
    lt = np.bincount(np.searchsorted(both, lcb), weights=lm, minlength=len(both))
    rt = np.bincount(np.searchsorted(both, rcb), weights=rm, minlength=len(both))
    rci = np.searchsorted(both, rcb)
    rm = rm * (lt / rt)[rci]  # the balance rows hold up to solver tolerance
    base = np.concatenate([[0.0], np.cumsum(lt)[:-1]])
    lend = np.cumsum(lm)
    same = (both // F) // K == (both // F) % K
    offset = np.where(same, 0.5 * lt, 0.0)
    local = np.cumsum(rm) - np.repeat(np.cumsum(rt) - rt, np.bincount(rci, minlength=len(both)))
    rstart = (local - rm + offset[rci]) % lt[rci] + base[rci]
    rend = (local + offset[rci]) % lt[rci] + base[rci]
    cuts = np.unique(np.concatenate([[0.0], lend, rstart, rend, base]))
    cuts = cuts[cuts <= lend[-1]]
    mid = 0.5 * (cuts[:-1] + cuts[1:])
    length = np.diff(cuts)
    li = np.minimum(np.searchsorted(lend, mid, side="right"), len(lm) - 1)
    combo = np.searchsorted(base, mid, side="right") - 1
    srt = np.argsort(rstart)
    pos = np.searchsorted(rstart[srt], mid, side="right") - 1
    cand = srt[np.maximum(pos, 0)]
    # no start of this combo at or before ``mid``: the combo's wrapping row covers it
    wrap_of = np.zeros(len(both), dtype=np.int64)
    last = np.lexsort((rstart, rci))
    wrap_of[rci[last]] = last
    bad = (pos < 0) | (rci[cand] != combo)
    ri = np.where(bad, wrap_of[combo], cand)
    i, j = lr[li], rr[ri]
    ok = (i != j) & (length > 1e-12)
    flv = both[combo] % F
    a_, b_, f_, s_ = np.minimum(i, j)[ok], np.maximum(i, j)[ok], flv[ok], length[ok]
    if len(a_) == 0:
        return PairShares.empty()
    key = (a_ * (int(b_.max()) + 1) + b_) * F + f_
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    share = np.bincount(inv.reshape(-1), weights=s_)
    keep = share > PAIR_TOL
    return PairShares(
        a_[first][keep].astype(np.int64),
        b_[first][keep].astype(np.int64),
        f_[first][keep].astype(np.int64),
        share[keep],
    )


@dataclass(frozen=True)
class MaxMinFairnessPacked:
    name: ClassVar[str] = "las-packed"
    event_driven: ClassVar[bool] = False
    time_shared: ClassVar[bool] = True
    #: The scheduler passes ``extras["pair_rates"]`` and runs pairs on one device set.
    space_sharing: ClassVar[bool] = True
    aware: ClassVar[bool] = True
    #: > 1: POP with this many random sub-problems (``policies/pop.py``); 1 solves it whole.
    partitions: int = 1
    #: Fill the max-min optimal face (``max_min.MaxMinFairness.fill``).
    fill: bool = True

    def allocate(self, inp: PolicyInput) -> Allocation:
        if inp.n == 0:
            return Allocation.empty()
        if self.partitions > 1:
            return pop_allocate(replace(self, partitions=1).allocate, inp, self.partitions)
        w = size_weights(inp, 0.0)
        coef = max_min_coefficients(inp, True, w)
        rates = inp.throughput
        norm = np.where(rates.max(axis=1) > 0, coef.max(axis=1) / rates.max(axis=1), 0.0)
        pair_rates = inp.extras.get("pair_rates")
        if pair_rates is None:
            C = inp.class_throughput.shape[0]
            pair_rates = np.zeros((C, C, inp.num_flavors))
        groups = group_rows(inp.job_class, inp.job_mask_index, w, inp.scale_factor)
        wg = group_rows(inp.job_class, inp.job_mask_index, inp.scale_factor)
        if len(wg.first) < len(groups.first):
            # rows differing only in weight: one LP row per group, per unit of weight (exact
            # when no per-job limit is tight; see ``max_min.weighted_aggregate``)
            G = len(wg.first)
            wsum = np.bincount(wg.inverse, weights=w, minlength=G)
            wmax = np.zeros(G)
            np.maximum.at(wmax, wg.inverse, w)
            f = wg.first
            cls = inp.job_class[f]
            sol = packed_lp(
                coef[f] * (w[f] / wmax)[:, None],
                norm[f] * w[f] / wmax,
                cls,
                wsum / wmax,
                inp.scale_factor[f],
                inp.capacity,
                pair_rates,
                self.fill,
            )
            if not _limits_tight(sol, cls, wsum / wmax):
                return within_capacity(_allocation(sol, wg.inverse, cls, w / wmax[wg.inverse]), inp)
        first = groups.first
        cls = inp.job_class[first]
        sol = packed_lp(
            coef[first],
            norm[first],
            cls,
            groups.count,
            inp.scale_factor[first],
            inp.capacity,
            pair_rates,
            self.fill,
        )
        return within_capacity(_allocation(sol, groups.inverse, cls, np.ones(inp.n)), inp)


def within_capacity(alloc: Allocation, inp: PolicyInput) -> Allocation:
    """Scale each flavor's shares down to its capacity where the allocation overshoots it: the
    LP's tolerance, and pairing time below ``PAIR_TOL`` handed back as time alone (which takes a
    whole device set where the pair took half), can exceed a flavor by a little."""
    p = alloc.pairs if alloc.pairs is not None else PairShares.empty()
    sf = inp.scale_factor.astype(np.float64)
    F = inp.num_flavors
    use = np.bincount(alloc.flavor, weights=alloc.share * sf[alloc.rows], minlength=F)
    use = use.astype(np.float64) + np.bincount(p.flavor, weights=p.share * sf[p.a], minlength=F)
    cap = inp.capacity.astype(np.float64)
    over = use > cap * (1.0 + 1e-12)
    if not over.any():
        return alloc
    k = np.where(over, cap / np.maximum(use, 1e-300), 1.0)
    pairs = replace(p, share=p.share * k[p.flavor])
    return replace(alloc, share=alloc.share * k[alloc.flavor], pairs=pairs)


def _allocation(
    sol: PackedSolution, inverse: np.ndarray, cls: np.ndarray, scale: np.ndarray
) -> Allocation:
    """Rows' single shares and job pairs; pairing time too small to become a pair (below
    ``PAIR_TOL``) goes back to the row's time alone on that flavor, so that a job whose share is
    spread thin over many partner classes (big gangs under heavy load) never loses it."""
    single = sol.single[inverse] * scale[:, None]
    pairs = decompose(sol, inverse, cls, scale)
    want = sol.paired.sum(axis=1)[inverse] * scale[:, None]
    got = np.zeros_like(want)
    np.add.at(got, (pairs.a, pairs.flavor), pairs.share)
    np.add.at(got, (pairs.b, pairs.flavor), pairs.share)
    single = single + np.maximum(want - got, 0.0)
    a = Allocation.from_dense(single)
    return Allocation(a.rows, a.flavor, a.share, pairs=pairs)


def _limits_tight(sol: PackedSolution, cls: np.ndarray, count: np.ndarray) -> bool:
    """True when a per-job limit binds: a group's total time, or its share of its own class's
    pairing time (``p <= S / 2``)."""
    total = sol.single.sum(axis=1) + sol.paired.sum(axis=(1, 2))
    if np.any(total > 1.0 - 1e-6):
        return True
    kpos = np.searchsorted(sol.partner_class, cls)
    own = sol.paired[np.arange(len(cls)), kpos, :]  # (G, F) time with the own class
    S = np.zeros((len(sol.partner_class), own.shape[1]))
    np.add.at(S, kpos, own * count[:, None])
    return bool(np.any((own > PAIR_TOL) & (own > 0.5 * S[kpos] * (1.0 - 1e-6))))
