"""Data movement: what it costs in time and money to run a job away from its data.

A job in region R reading a dataset stored in region S != R copies it first: its start is
delayed by ``size / bandwidth(S, R)`` (datasets from different sources move in parallel, those
from one source one after another) and the ledger charges ``size x egress price of S``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from computepool.model.job import Dataset
from computepool.model.pool import Pool
from computepool.model.region import Region

#: Used where the pool's catalog gives no bandwidth for a pair of regions: the 10 Gbit/s
#: inter-cloud figure SkyPilot's optimizer assumes (research/anchors-production.md).
DEFAULT_GBPS = 10.0


@dataclass(frozen=True)
class Transfer:
    seconds: float
    gb: float
    egress_usd: float


NO_TRANSFER = Transfer(0.0, 0.0, 0.0)


def bandwidth_gbps(pool: Pool, a: str, b: str, default: float = DEFAULT_GBPS) -> float:
    key = (a, b) if a <= b else (b, a)
    bw = pool.bandwidth_gbps.get(key)
    return float(bw) if bw and bw > 0 else default


def transfer_for(
    datasets: Sequence[Dataset],
    region: str,
    pool: Pool,
    regions: Mapping[str, Region] | None = None,
    default_gbps: float = DEFAULT_GBPS,
) -> Transfer:
    """Time, volume and egress price of bringing ``datasets`` to ``region``."""
    per_source: dict[str, float] = {}
    for ds in datasets:
        if ds.stored_in and ds.stored_in != region and ds.size_gb > 0:
            per_source[ds.stored_in] = per_source.get(ds.stored_in, 0.0) + ds.size_gb
    if not per_source:
        return NO_TRANSFER
    known = {**(regions or {}), **pool.regions}
    seconds = max(
        gb * 8.0 / bandwidth_gbps(pool, src, region, default_gbps) for src, gb in per_source.items()
    )
    usd = sum(
        gb * (known[src].egress_usd_per_gb if src in known else 0.0)
        for src, gb in per_source.items()
    )
    return Transfer(seconds, sum(per_source.values()), usd)


def profile_transfer_matrices(
    profiles: Sequence[tuple[Dataset, ...]],
    pool: Pool,
    regions: Mapping[str, Region] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(seconds, GB, egress USD), each (P, F): moving profile p's data to flavor f's region."""
    P, F = len(profiles), len(pool.flavors)
    sec, gb, usd = np.zeros((P, F)), np.zeros((P, F)), np.zeros((P, F))
    names = sorted({f.region for f in pool.flavors})
    cols = {r: [i for i, f in enumerate(pool.flavors) if f.region == r] for r in names}
    for p, ds in enumerate(profiles):
        if not any(d.stored_in for d in ds):
            continue
        for r in names:
            t = transfer_for(ds, r, pool, regions)
            sec[p, cols[r]], gb[p, cols[r]], usd[p, cols[r]] = t.seconds, t.gb, t.egress_usd
    return sec, gb, usd
