"""The round mechanism: turn an allocation into who runs on which flavor in this round.

Time-share allocations (the LP policies) follow Gavel's rule (OSDI'20, ``scheduler.py``):

* a row's priority on flavor ``f`` is ``share[m, f] / (received[m, f] / flavor_time[f])``: its
  allocated share over the fraction of the flavor's time it has received since the last reset
  (``share * 1e9`` before the flavor has any time; 0 where the share is 0);
* flavors are filled one after another (fastest first for aware policies); on each, rows not yet
  placed this round are taken in order of priority, then deficit (time owed from earlier reset
  periods), then share, while the flavor has room; a gang that does not fit is skipped;
* rows with no share on a flavor still fill leftover room there, in the same order (so the pool is
  never idle while a feasible row waits);
* a row picked for the flavor it already runs on keeps running (lease extension, no restart);
  at equal keys a row already running there goes first.

Policies that decide an order themselves (FIFO, Tiresias) set ``Allocation.priority``; their
entries are served in that order with the same one-flavor-per-row and capacity rules.
"""

from __future__ import annotations

import numpy as np

from computepool.model.allocation import Allocation

#: Priority of a share on a flavor that has had no time yet (Gavel uses share * 1e9, not inf,
#: so a larger share still ranks first).
UNSERVED_SCALE = 1e9


def time_share_priorities(
    share: np.ndarray, received: np.ndarray, flavor_time: np.ndarray
) -> np.ndarray:
    """(n, F) Gavel priorities: share / fraction of the flavor's time received."""
    ft = np.asarray(flavor_time, dtype=np.float64)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(ft > 0, received / ft, 0.0)
        prio = np.where(frac > 0, share / frac, share * UNSERVED_SCALE)
    return np.where(share > 0, prio, 0.0)


def _fill(cand: np.ndarray, need: np.ndarray, free: int, min_need: int) -> tuple[np.ndarray, int]:
    """Take candidates in order while they fit; a gang that does not fit is skipped."""
    if len(cand) == 0 or free < min_need:
        return cand[:0], free
    if np.all(need == 1):
        take = cand[:free]
        return take, free - len(take)
    taken = []
    for r, k in zip(cand.tolist(), need.tolist(), strict=True):
        if k <= free:
            taken.append(r)
            free -= k
            if free < min_need:
                break
    return np.asarray(taken, dtype=np.int64), free


def assign_time_shares(
    share: np.ndarray,
    usable: np.ndarray,
    scale_factor: np.ndarray,
    capacity: np.ndarray,
    running: np.ndarray,
    received: np.ndarray,
    flavor_time: np.ndarray,
    deficit: np.ndarray,
    flavor_order: np.ndarray,
) -> np.ndarray:
    """Flavor each row runs on this round (-1: none), from a dense (n, F) time-share matrix.

    ``usable`` (n, F) bool marks flavors a row may run on now (feasible and eligible).
    """
    n = len(running)
    out = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return out
    sf = np.asarray(scale_factor, dtype=np.int64)
    prio = time_share_priorities(share, received, flavor_time)
    free = np.asarray(capacity, dtype=np.int64).copy()
    rows = np.arange(n)
    for f in np.asarray(flavor_order, dtype=np.int64).tolist():
        cand = rows[usable[:, f] & (out < 0)]
        if len(cand) == 0 or free[f] <= 0:
            continue
        staying = (running[cand] == f).astype(np.int8)
        order = np.lexsort((cand, -staying, -share[cand, f], -deficit[cand, f], -prio[cand, f]))
        cand = cand[order]
        need = sf[cand]
        taken, free[f] = _fill(cand, need, int(free[f]), int(need.min()))
        out[taken] = f
    return out


def assign_ordered(
    alloc: Allocation, scale_factor: np.ndarray, capacity: np.ndarray, running: np.ndarray
) -> np.ndarray:
    """Flavor per row for allocations that carry their own order (``alloc.priority``) or that
    fit as a whole (one entry per row within capacity: everyone in it runs)."""
    n = len(running)
    out = np.full(n, -1, dtype=np.int64)
    if len(alloc) == 0:
        return out
    rows, flv = alloc.rows, alloc.flavor
    usage = np.bincount(flv, weights=scale_factor[rows], minlength=len(capacity))
    unique_rows = np.bincount(rows, minlength=n).max() <= 1
    if unique_rows and np.all(usage <= capacity + 1e-9):
        out[rows] = flv
        return out
    prio = (
        np.asarray(alloc.priority, dtype=np.float64)
        if alloc.priority is not None
        else alloc.share.astype(np.float64)
    )
    staying = (running[rows] == flv).astype(np.int8)
    order = np.lexsort((rows, -alloc.share, -staying, -prio))
    free = capacity.astype(np.int64).copy()
    min_sf = int(scale_factor[rows].min())
    for e in order.tolist():
        r = rows[e]
        if out[r] >= 0:
            continue
        f = flv[e]
        need = scale_factor[r]
        if free[f] >= need:
            free[f] -= need
            out[r] = f
            if free.max() < min_sf:
                break
    return out


def speed_order(class_rates: np.ndarray) -> np.ndarray:
    """Flavors fastest first: by the median over classes of each class's speed relative to its
    best flavor (Gavel fills V100, then P100, then K80)."""
    if class_rates.size == 0:
        return np.arange(class_rates.shape[1] if class_rates.ndim == 2 else 0)
    best = class_rates.max(axis=1, keepdims=True)
    rel = np.where(best > 0, class_rates / np.maximum(best, 1e-300), 0.0)
    return np.argsort(-np.median(rel, axis=0), kind="stable")
