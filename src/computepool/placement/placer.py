"""``PoolPlacer``: the Scheduler's ``Placer`` backed by the slot state and a placement profile.

The policy picks a flavor (region, accelerator type) for each job to start; the placer binds
the job's workers to node devices of that flavor with the same engine ``cpool pack`` uses. A
job of ``k`` accelerators is one worker when ``k`` fits a node of the flavor, else
``ceil(k / node size)`` workers of whole nodes (the last one smaller): a gang, placed whole or
not at all. A gang spread over several islands runs at ``rate_factor`` of its consolidated
speed (the throughput table's unconsolidated rate where measured, Gavel's V100/P100/K80;
``DEFAULT_UNCONSOLIDATED_FACTOR`` elsewhere).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from computepool.model.pool import Pool
from computepool.model.throughput import DEFAULT_UNCONSOLIDATED_FACTOR, Throughputs
from computepool.model.workload import Workload
from computepool.placement.engine import PlacementEngine
from computepool.placement.frag import TargetWorkload
from computepool.placement.gang import GangPlacement, place_gang
from computepool.placement.profiles import get_profile
from computepool.placement.request import PodRequest
from computepool.placement.state import SlotState
from computepool.scheduler.interfaces import Placement


def split_workers(accelerators: int, node_size: int) -> list[PodRequest]:
    """Workers of a job of ``accelerators`` devices on nodes of ``node_size`` devices."""
    if accelerators <= node_size:
        return [PodRequest.whole(accelerators)]
    n = math.ceil(accelerators / node_size)
    sizes = [node_size] * (n - 1) + [accelerators - node_size * (n - 1)]
    return [PodRequest.whole(s) for s in sizes]


@dataclass
class FragSeries:
    """Fragmentation over time: fragmented and allocated shares of all devices."""

    t: list[float] = field(default_factory=list)
    fragmented: list[float] = field(default_factory=list)
    allocated: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        frag = np.asarray(self.fragmented)
        return {
            "fragmentation": {
                "t": list(self.t),
                "fragmented_share": list(self.fragmented),
                "allocated_share": list(self.allocated),
            },
            "mean_fragmented_share": float(frag.mean()) if len(frag) else None,
        }


class PoolPlacer:
    def __init__(
        self,
        pool: Pool,
        workload: Workload,
        throughputs: Throughputs,
        policy: str = "fgd",
        seed: int = 0,
    ) -> None:
        self.pool, self.workload, self.throughputs = pool, workload, throughputs
        self.state = SlotState.from_pool(pool)
        profile = get_profile(policy)
        nf = len(pool.flavors)
        self._node_size = np.zeros(nf, dtype=np.int64)
        np.maximum.at(self._node_size, pool.node_flavor, pool.node_count)
        self._flavor_nodes = [pool.node_flavor == f for f in range(nf)]
        target = self._target(profile.target_share)
        self.engine = PlacementEngine(self.state, profile, target, seed=seed)
        self._held: dict[int, GangPlacement] = {}
        self.series = FragSeries()

    def _target(self, share: float) -> TargetWorkload:
        """The workload's own worker-size distribution (largest node size of the pool)."""
        size = int(self._node_size.max()) if len(self._node_size) else 1
        sf = self.workload.scale_factor
        counts: Counter[PodRequest] = Counter({PodRequest.whole(1): 0})
        for k, c in zip(*np.unique(sf, return_counts=True), strict=True):
            for w in split_workers(int(k), size):
                counts[w] += int(c)
        if not len(sf):
            counts[PodRequest.whole(1)] = 1
        return TargetWorkload.from_counts(counts, self.state.types, share)

    def workers(self, job: int, flavor: int) -> list[PodRequest]:
        cls = self.workload.classes[int(self.workload.job_class[job])]
        return split_workers(cls.scale_factor, int(self._node_size[flavor]))

    def rate_factor(self, job: int, flavor: int) -> float:
        cls = self.workload.classes[int(self.workload.job_class[job])]
        accel = self.pool.flavors[flavor].accelerator
        full = self.throughputs.rate(cls.job_type, cls.scale_factor, accel, True)
        if full <= 0:
            return DEFAULT_UNCONSOLIDATED_FACTOR
        return self.throughputs.rate(cls.job_type, cls.scale_factor, accel, False) / full

    # ---- Placer protocol ---------------------------------------------------------------
    def place(
        self, jobs: np.ndarray, flavors: np.ndarray, now: float
    ) -> tuple[list[Placement], np.ndarray]:
        placed = np.zeros(len(jobs), dtype=bool)
        out: list[Placement] = []
        for i, (j, f) in enumerate(zip(jobs, flavors, strict=True)):
            j, f = int(j), int(f)
            if j in self._held:
                raise ValueError(f"job {j} is already placed; release it first")
            g = place_gang(self.engine, self.workers(j, f), self._flavor_nodes[f])
            if g is None:
                continue
            placed[i] = True
            self._held[j] = g
            out.append(
                Placement(
                    job=j,
                    flavor=f,
                    workers=tuple((b.node, b.devices) for b in g.bindings),
                    consolidated=g.consolidated,
                    rate_factor=1.0 if g.consolidated else self.rate_factor(j, f),
                )
            )
        return out, placed

    def release(self, jobs: np.ndarray) -> None:
        for j in jobs:
            g = self._held.pop(int(j), None)
            if g is not None:
                for b in g.bindings:
                    self.engine.unbind(b)

    def record(self, now: float) -> None:
        """Append the current fragmented / allocated shares to ``series``."""
        total = self.state.total_gpu_milli
        if total == 0:
            return
        self.series.t.append(now)
        self.series.fragmented.append(self.engine.cluster_frag() / total)
        self.series.allocated.append(self.state.used_gpu_milli() / total)
