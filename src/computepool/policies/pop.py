"""POP (Narayanan et al., SOSP'21): solve a big allocation problem as ``k`` independent ones.

Jobs are split at random into ``k`` equal parts and each part gets ``1/k`` of every flavor's
capacity; the policy runs on each part alone and the allocations are put side by side. POP
reports max-min allocations within 1.5 % of the exact optimum on Gavel's workloads; our
benchmark (``benchmarks/policy_runtime.py``) measures the gap on its own instances.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from computepool.model.allocation import Allocation, PairShares
from computepool.policies.base import PolicyInput, subset_input


def partitions(n: int, k: int, seed: int = 0) -> list[np.ndarray]:
    """``k`` random, nearly equal, sorted parts of ``range(n)``."""
    perm = np.random.default_rng(seed).permutation(n)
    return [np.sort(p) for p in np.array_split(perm, k)]


def pop_allocate(
    allocate: Callable[[PolicyInput], Allocation], inp: PolicyInput, k: int, seed: int = 0
) -> Allocation:
    """Run ``allocate`` on ``k`` random parts with ``capacity / k`` each; merge the results."""
    if k <= 1 or inp.n < 2 * k:
        return allocate(inp)
    rows, flv, share = [], [], []
    pa, pb, pf, ps = [], [], [], []
    cap = inp.capacity.astype(np.float64) / k
    for part in partitions(inp.n, k, seed):
        sub = replace(subset_input(inp, part), capacity=cap)
        a = allocate(sub)
        rows.append(part[a.rows])
        flv.append(a.flavor)
        share.append(a.share)
        if a.pairs is not None and len(a.pairs):
            pa.append(part[a.pairs.a])
            pb.append(part[a.pairs.b])
            pf.append(a.pairs.flavor)
            ps.append(a.pairs.share)
    pairs = None
    if pa:
        pairs = PairShares(*(np.concatenate(v) for v in (pa, pb, pf, ps)))
    return Allocation(
        np.concatenate(rows).astype(np.int64),
        np.concatenate(flv).astype(np.int64),
        np.concatenate(share),
        pairs=pairs,
    )
