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
  at equal keys a row already running there goes first;
* starvation guard (ours, not Gavel's): a row with a share on ``f`` that is owed more than
  ``deficit_limit`` seconds there (its deficit, the time its share entitled it to over earlier
  reset periods minus what it got) goes ahead of every row ranked by priority, most owed first.
  Gavel's priority forgets at each reset (every ~1,920 s under steady arrivals), so a row whose
  share is small next to its neighbours' (a large gang under max-min, whose share shrinks with
  its scale factor) can lose every period and wait until arrivals stop; its deficit keeps
  growing, so the guard serves it. With ``inf`` the order is exactly Gavel's.

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
    received = np.asarray(received, dtype=np.float64)
    share = np.asarray(share, dtype=np.float64)
    # divisions only where they are defined (no error state to switch, no inf/nan to mask)
    frac = np.divide(received, ft, out=np.zeros(received.shape), where=ft > 0)
    prio = np.multiply(share, UNSERVED_SCALE)
    np.divide(share, frac, out=prio, where=frac > 0)
    prio[~(share > 0)] = 0.0
    return prio


def starving_key(deficit: np.ndarray, share: np.ndarray, limit: float) -> np.ndarray:
    """Primary sort key of the starvation guard: the deficit where it passes ``limit`` on a
    flavor the row holds a share of, else 0."""
    return np.where((deficit > limit) & (share > 0), deficit, 0.0)


def _fill(cand: np.ndarray, need: np.ndarray, free: int, min_need: int) -> tuple[np.ndarray, int]:
    """Take candidates in order while they fit; a gang that does not fit is skipped."""
    if len(cand) == 0 or free < min_need:
        return cand[:0], free
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
    deficit_limit: float = float("inf"),
) -> np.ndarray:
    """Flavor each row runs on this round (-1: none), from a dense (n, F) time-share matrix.

    ``usable`` (n, F) bool marks flavors a row may run on now (feasible and eligible);
    ``deficit_limit``: the starvation guard's threshold in seconds (``inf``: off).
    """
    n = len(running)
    out = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return out
    sf = np.asarray(scale_factor, dtype=np.int64)
    singles = bool((sf == 1).all())  # every row needs one device: take the first ``free``
    prio = time_share_priorities(share, received, flavor_time)
    free = np.asarray(capacity, dtype=np.int64).tolist()
    unplaced = np.ones(n, dtype=bool)
    guard = deficit_limit != float("inf")
    for f in np.asarray(flavor_order, dtype=np.int64).tolist():
        if free[f] <= 0:
            continue
        cand = (usable[:, f] & unplaced).nonzero()[0]
        if len(cand) == 0:
            continue
        staying = (running[cand] == f).astype(np.int8)
        owed = deficit[cand, f]
        keys = [cand, -staying, -share[cand, f], -owed, -prio[cand, f]]
        if guard:  # without the guard its key is 0 everywhere: leave it out
            keys.append(-starving_key(owed, share[cand, f], deficit_limit))
        cand = cand[np.lexsort(keys)]
        if singles:
            taken = cand[: free[f]]
            free[f] -= len(taken)
        else:
            need = sf[cand]
            taken, free[f] = _fill(cand, need, free[f], int(need.min()))
        out[taken] = f
        unplaced[taken] = False
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


def assign_with_pairs(
    single: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    pair: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    scale_factor: np.ndarray,
    capacity: np.ndarray,
    running: np.ndarray,
    partner: np.ndarray,
    flavor_time: np.ndarray,
    flavor_order: np.ndarray,
    deficit_limit: float = float("inf"),
) -> tuple[np.ndarray, np.ndarray]:
    """Space sharing (Gavel's packed mechanism): singles and pairs compete on each flavor.

    ``single`` = (share, usable, received, deficit), each (n, F), as in ``assign_time_shares``;
    ``pair`` = (a, b, share, usable, received, deficit): pair ``k`` is rows ``a[k]`` and ``b[k]``
    on one device set, with its own share, time received and deficit per flavor. On each flavor,
    singles and pairs are taken by priority, deficit, share (a pair or single already running
    there first at ties, after the starvation guard of ``assign_time_shares``) while room lasts; an entry with a row already placed is skipped, so a
    row runs at most once and a pair uses ``scale_factor`` devices like one job.

    Returns the flavor of each row (-1: none) and its partner row (-1: alone).
    """
    s_share, s_usable, s_recv, s_def = single
    pa, pb, p_share, p_usable, p_recv, p_def = pair
    n = len(running)
    out = np.full(n, -1, dtype=np.int64)
    mate = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return out, mate
    sf = np.asarray(scale_factor, dtype=np.int64)
    s_prio = time_share_priorities(s_share, s_recv, flavor_time)
    p_prio = time_share_priorities(p_share, p_recv, flavor_time)
    free = np.asarray(capacity, dtype=np.int64).copy()
    rows = np.arange(n)
    for f in np.asarray(flavor_order, dtype=np.int64).tolist():
        if free[f] <= 0:
            continue
        cs = rows[s_usable[:, f] & (out < 0)]
        cp = np.nonzero((p_share[:, f] > 0) & p_usable[:, f] & (out[pa] < 0) & (out[pb] < 0))[0]
        if len(cs) == 0 and len(cp) == 0:
            continue
        stay_s = (running[cs] == f) & (partner[cs] < 0)
        stay_p = (running[pa[cp]] == f) & (partner[pa[cp]] == pb[cp])
        prio = np.concatenate([s_prio[cs, f], p_prio[cp, f]])
        dfc = np.concatenate([s_def[cs, f], p_def[cp, f]])
        shr = np.concatenate([s_share[cs, f], p_share[cp, f]])
        stay = np.concatenate([stay_s, stay_p]).astype(np.int8)
        first = np.concatenate([cs, pa[cp]])
        second = np.concatenate([np.full(len(cs), -1), pb[cp]])
        starving = starving_key(dfc, shr, deficit_limit)
        order = np.lexsort((second, first, -stay, -shr, -dfc, -prio, -starving))
        left = int(free[f])
        placed = out >= 0
        for e in order.tolist():
            i, j = int(first[e]), int(second[e])
            if placed[i] or (j >= 0 and placed[j]):
                continue
            need = int(sf[i])
            if need > left:
                continue
            left -= need
            out[i] = f
            placed[i] = True
            if j >= 0:
                out[j] = f
                placed[j] = True
                mate[i], mate[j] = j, i
            if left <= 0:
                break
        free[f] = left
    return out, mate
