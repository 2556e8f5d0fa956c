"""Greedy, order-based assignment shared by the ordering policies (FIFO, Tiresias-style LAS).

Rows are visited in a given order; each takes one flavor whole (a job never spans flavors).
A row that runs now keeps its flavor when it still fits (no needless migration); otherwise it
takes the first flavor in its preference list with enough free accelerators: the fastest first
(heterogeneity-aware) or, speed-blind, a rotation of the feasible flavors (agnostic).

Two implementations with the same rules: a row-by-row loop for small inputs and for rows with
different feasible flavor sets, and a bulk (vectorised) one used when many rows share one
feasible set (pool-scale runs). The bulk one fills each flavor with a prefix of the waiting rows
and then places leftovers row by row, so it may differ from the loop only in which of several
equally ranked flavors a job lands on.
"""

from __future__ import annotations

import numpy as np

from computepool.model.allocation import Allocation
from computepool.policies.base import PolicyInput

#: Use the bulk path from this many rows on.
BULK_MIN_ROWS = 1024
#: Rows the leftover pass may scan after the bulk fill.
LEFTOVER_SCAN = 4096


def preference_lists(inp: PolicyInput, aware: bool) -> dict[tuple[int, int], list[int]]:
    """Feasible flavors per (class, mask) combination, fastest first (aware) or in index order."""
    out: dict[tuple[int, int], list[int]] = {}
    if inp.n == 0:
        return out
    key = inp.job_class.astype(np.int64) * (len(inp.feasible_masks) + 1) + inp.job_mask_index
    _, first = np.unique(key, return_index=True)
    for r in first:
        c, m = int(inp.job_class[r]), int(inp.job_mask_index[r])
        rates = inp.class_throughput[c] * inp.feasible_masks[m]
        ok = np.nonzero(rates > 0)[0]
        if aware:
            ok = ok[np.argsort(-rates[ok], kind="stable")]
        out[(c, m)] = [int(f) for f in ok]
    return out


def _result(rows: list[int] | np.ndarray, flavors: list[int] | np.ndarray) -> Allocation:
    r = np.asarray(rows, dtype=np.int64)
    return Allocation(
        r,
        np.asarray(flavors, dtype=np.int64),
        np.ones(len(r)),
        priority=-np.arange(len(r), dtype=np.float64),
    )


def _rotated(pref: list[int], k: int) -> list[int]:
    if len(pref) <= 1:
        return pref
    k %= len(pref)
    return pref[k:] + pref[:k]


def _loop_assign(
    inp: PolicyInput,
    order: np.ndarray,
    aware: bool,
    free: np.ndarray,
    prefs: dict[tuple[int, int], list[int]],
    keep_running: bool,
) -> Allocation:
    sf = inp.scale_factor
    min_sf = int(sf[order].min())
    most = int(free.max())
    rows: list[int] = []
    flavors: list[int] = []
    for r in order:
        if most < min_sf:
            break
        need = int(sf[r])
        cur = int(inp.running[r])
        if keep_running and cur >= 0 and free[cur] >= need:
            choice = cur
        else:
            pref = prefs[(int(inp.job_class[r]), int(inp.job_mask_index[r]))]
            if not aware:
                pref = _rotated(pref, int(inp.job[r]))
            choice = -1
            for f in pref:
                if free[f] >= need:
                    choice = f
                    break
            if choice < 0:
                continue
        free[choice] -= need
        if free[choice] + need == most:
            most = int(free.max())
        rows.append(int(r))
        flavors.append(choice)
    return _result(rows, flavors)


def _bulk_assign(
    inp: PolicyInput,
    order: np.ndarray,
    aware: bool,
    free: np.ndarray,
    pref: list[int],
    keep_running: bool,
) -> Allocation:
    sf = inp.scale_factor[order].astype(np.int64)
    pref_arr = np.asarray(pref, dtype=np.int64)
    total = int(free[pref_arr].sum())
    # 1. who runs: the longest prefix that fits the total, then smaller rows into what is left
    cum = np.cumsum(sf)
    k = int(np.searchsorted(cum, total, side="right"))
    admitted = np.zeros(len(order), dtype=bool)
    admitted[:k] = True
    left = total - (int(cum[k - 1]) if k else 0)
    if k < len(order) and left > 0:
        tail = np.nonzero(sf[k : k + LEFTOVER_SCAN] <= left)[0] + k
        for i in tail:
            if sf[i] <= left:
                admitted[i] = True
                left -= int(sf[i])
                if left <= 0:
                    break
    pos = np.nonzero(admitted)[0]
    flavor = np.full(len(order), -1, dtype=np.int64)
    free = free.copy()
    # 2. running rows keep their flavor while it has room, in rank order
    if keep_running:
        cur = inp.running[order[pos]]
        in_set = np.isin(cur, pref_arr)
        cand = pos[in_set]
        if len(cand):
            cf = inp.running[order[cand]]
            o = np.lexsort((cand, cf))
            cand, cf = cand[o], cf[o]
            csf = sf[cand]
            cs = np.cumsum(csf)
            starts = np.r_[0, np.nonzero(np.diff(cf))[0] + 1]
            base = np.repeat(cs[starts] - csf[starts], np.diff(np.r_[starts, len(cf)]))
            keep = (cs - base) <= free[cf]
            flavor[cand[keep]] = cf[keep]
            free -= np.bincount(cf[keep], weights=csf[keep], minlength=len(free)).astype(np.int64)
    # 3. the others fill the flavors in preference order, a prefix per flavor
    if not aware and len(pref_arr) > 1:
        pref_arr = np.roll(pref_arr, -(int(inp.now) % len(pref_arr)))
    waiting = pos[flavor[pos] < 0]
    for f in pref_arr:
        if len(waiting) == 0:
            break
        room = int(free[f])
        if room <= 0:
            continue
        c = np.cumsum(sf[waiting])
        m = int(np.searchsorted(c, room, side="right"))
        if m:
            flavor[waiting[:m]] = f
            free[f] -= int(c[m - 1])
            waiting = waiting[m:]
    for i in waiting[:LEFTOVER_SCAN]:
        fits = pref_arr[free[pref_arr] >= sf[i]]
        if len(fits):
            flavor[i] = fits[0]
            free[fits[0]] -= sf[i]
    chosen = np.nonzero(flavor >= 0)[0]
    return _result(order[chosen], flavor[chosen])


def greedy_assign(
    inp: PolicyInput,
    order: np.ndarray,
    aware: bool,
    free: np.ndarray | None = None,
    keep_running: bool = True,
) -> Allocation:
    """Assign rows in ``order`` to flavors while capacity lasts; returns 0/1 shares.

    ``free`` is the capacity to fill (default: the whole capacity). The returned priority is
    the position in ``order`` (earlier = higher) so the round mechanism keeps the same order.
    """
    free = (inp.capacity if free is None else free).astype(np.int64).copy()
    if len(order) == 0:
        return Allocation.empty()
    prefs = preference_lists(inp, aware)
    distinct = {tuple(p) for p in prefs.values()}
    if len(order) >= BULK_MIN_ROWS and len(distinct) == 1:
        return _bulk_assign(inp, order, aware, free, next(iter(distinct)), keep_running)
    return _loop_assign(inp, order, aware, free, prefs, keep_running)
