"""Greedy, order-based assignment shared by the ordering policies (FIFO, Tiresias-style LAS).

Rows are visited in a given order; each takes one flavor whole (a job never spans flavors).
A row that runs now keeps its flavor when it still fits (no needless migration); otherwise it
takes the first flavor in its preference list with enough free accelerators.
"""

from __future__ import annotations

import numpy as np

from computepool.model.allocation import Allocation
from computepool.policies.base import PolicyInput


def preference_lists(inp: PolicyInput, aware: bool) -> dict[tuple[int, int], list[int]]:
    """Feasible flavors per (class, mask) combination, fastest first (aware) or in index order."""
    out: dict[tuple[int, int], list[int]] = {}
    combos = np.unique(np.stack([inp.job_class, inp.job_mask_index], axis=1), axis=0)
    for c, m in combos:
        rates = inp.class_throughput[c] * inp.feasible_masks[m]
        ok = np.nonzero(rates > 0)[0]
        if aware:
            ok = ok[np.argsort(-rates[ok], kind="stable")]
        out[(int(c), int(m))] = [int(f) for f in ok]
    return out


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
    sf = inp.scale_factor
    min_sf = int(sf[order].min())
    rows: list[int] = []
    flavors: list[int] = []
    nflav = inp.num_flavors
    for r in order:
        if free.max() < min_sf:
            break
        need = int(sf[r])
        cur = int(inp.running[r])
        if keep_running and cur >= 0 and free[cur] >= need:
            choice = cur
        else:
            pref = prefs[(int(inp.job_class[r]), int(inp.job_mask_index[r]))]
            if not aware and len(pref) > 1:
                k = int(inp.job[r]) % len(pref)
                pref = pref[k:] + pref[:k]
            choice = -1
            for f in pref:
                if free[f] >= need:
                    choice = f
                    break
            if choice < 0:
                continue
        free[choice] -= need
        rows.append(int(r))
        flavors.append(choice)
    n = len(rows)
    assert nflav >= 0
    return Allocation(
        np.asarray(rows, dtype=np.int64),
        np.asarray(flavors, dtype=np.int64),
        np.ones(n),
        priority=-np.arange(n, dtype=np.float64),
    )
