"""The round mechanism: turn an allocation (time shares) into who runs in this round.

As in Gavel, a row's priority on a flavor is ``share / fraction of time received there`` since
the last reset (never-served rows first), unless the policy supplied its own order. Entries are
served greedily in priority order while the flavor has room; a row runs on one flavor at a time.
A row already running on the flavor it is picked for keeps running (lease extension: no
restart). When every row has one entry and the allocation fits, everyone in it runs.
"""

from __future__ import annotations

import numpy as np

from computepool.model.allocation import Allocation


def priorities(alloc: Allocation, received: np.ndarray, since_reset: float) -> np.ndarray:
    if alloc.priority is not None:
        return np.asarray(alloc.priority, dtype=np.float64)
    if since_reset <= 0:
        return alloc.share.copy() * 1e9
    frac = received[alloc.rows, alloc.flavor] / since_reset
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(frac > 1e-12, alloc.share / frac, np.inf)


def assign_round(
    alloc: Allocation,
    scale_factor: np.ndarray,
    capacity: np.ndarray,
    running: np.ndarray,
    received: np.ndarray,
    since_reset: float,
) -> np.ndarray:
    """Flavor each row runs on this round (-1: does not run)."""
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
    prio = priorities(alloc, received, since_reset)
    staying = (running[rows] == flv).astype(np.int8)
    order = np.lexsort((rows, -alloc.share, -staying, -prio))
    free = capacity.astype(np.int64).copy()
    min_sf = int(scale_factor[rows].min())
    for e in order:
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
