"""Fragmentation measured against a target workload (FGD, Weng et al., ATC'23).

A node's idle device capacity is *fragmented for a task* when that task cannot use it: the
node lacks CPU, has too few devices with enough free milli-units, has the wrong accelerator
type, or the task needs no device at all. For a task that *does* fit, only the devices with
less free than the task's per-device share are fragments. The node's fragmentation is the
expectation over the target workload's task types (their popularity), in milli-units:

    F(n) = sum_k p_k * ( idle(n)                         if task k cannot run on n
                         sum of free < m_k on n          otherwise )

The cluster's fragmentation is the sum over nodes. FGD places each task where F grows least.
Memory is not part of the measure (as in the paper); it is checked by the filters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from computepool.placement.request import PodRequest

#: Task types making up this share of all tasks (most popular first) form the target.
POPULARITY_THRESHOLD = 0.95


@dataclass(frozen=True)
class TargetWorkload:
    """Task types (CPU, per-device milli, device count, accepted types) and their probabilities."""

    cpu: np.ndarray  # (K,) int64
    milli: np.ndarray  # (K,) int64 per-device share; 0 = no device
    num: np.ndarray  # (K,) int64
    prob: np.ndarray  # (K,) float64, sums to 1
    #: (K, T) bool: may task type k run on accelerator type t (T = state's types).
    type_ok: np.ndarray
    #: CPU milli and memory MiB the whole workload (all tasks, CPU-only ones included, not
    #: only the popular types) asks per device milli-unit it asks; used by ``node_stranded``.
    cpu_per_milli: float = 0.0
    mem_per_milli: float = 0.0

    def __len__(self) -> int:
        return len(self.prob)

    # Derived columns for ``node_frag``: distinct per-device levels, device tasks, ...
    @cached_property
    def levels(self) -> np.ndarray:
        return np.unique(self.milli[self.milli > 0]).astype(np.int32)

    @cached_property
    def device_tasks(self) -> np.ndarray:
        return np.flatnonzero(self.milli > 0)

    @cached_property
    def device_level(self) -> np.ndarray:
        return np.searchsorted(self.levels, self.milli[self.device_tasks])

    @cached_property
    def cpu_only_prob(self) -> float:
        return float(self.prob[self.milli == 0].sum())

    @cached_property
    def constrained(self) -> bool:
        """Whether some device task refuses some accelerator type (or there are no types)."""
        ok = self.type_ok[self.device_tasks]
        return ok.shape[1] == 0 or not bool(ok.all())

    @classmethod
    def from_requests(
        cls,
        requests: Iterable[PodRequest],
        types: Sequence[str],
        threshold: float = POPULARITY_THRESHOLD,
    ) -> TargetWorkload:
        """The most popular task types covering ``threshold`` of all tasks, renormalised.

        Tasks are typed by (CPU, per-device milli, device count, accepted types); memory is
        left out as in FGD. Ties in popularity go to the larger request first.
        """
        return cls.from_counts(Counter(requests), types, threshold)

    @classmethod
    def from_counts(
        cls,
        requests: Mapping[PodRequest, float],
        types: Sequence[str],
        threshold: float = POPULARITY_THRESHOLD,
    ) -> TargetWorkload:
        """Like ``from_requests`` from (request -> how many tasks ask it)."""
        counts: Counter[tuple] = Counter()
        dev = cpu = mem = 0.0
        for r, c in requests.items():
            counts[(r.cpu_milli, r.gpu_milli, r.num_gpu, tuple(sorted(r.gpu_spec)))] += c
            dev += c * r.total_gpu_milli
            cpu += c * r.cpu_milli
            mem += c * r.memory_mib
        if not counts or sum(counts.values()) <= 0:
            raise ValueError("the target workload is empty")
        total = sum(counts.values())
        ranked = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
        kept, cum = [], 0
        for key, c in ranked:
            if cum >= threshold * total:
                break
            kept.append((key, c))
            cum += c
        prob = np.array([c for _, c in kept], dtype=np.float64) / cum
        type_ok = np.array(
            [[not spec or t in spec for t in types] for (_, _, _, spec), _ in kept], dtype=bool
        ).reshape(len(kept), len(types))
        return cls(
            cpu=np.array([k[0] for k, _ in kept], dtype=np.int64),
            milli=np.array([k[1] for k, _ in kept], dtype=np.int64),
            num=np.array([k[2] for k, _ in kept], dtype=np.int64),
            prob=prob,
            type_ok=type_ok,
            cpu_per_milli=cpu / dev if dev else 0.0,
            mem_per_milli=mem / dev if dev else 0.0,
        )


def node_frag(
    gpu_free: np.ndarray, cpu_free: np.ndarray, gpu_type: np.ndarray, target: TargetWorkload
) -> np.ndarray:
    """Expected fragmented milli-units of each node state (rows of ``gpu_free``)."""
    lv = target.levels
    x = gpu_free
    idle = x.sum(axis=1, dtype=np.int64)
    fits = x[:, None, :] >= lv[None, :, None]  # (S, U, G): devices that hold a level
    count = fits.sum(axis=2)
    small = idle[:, None] - (x[:, None, :] * fits).sum(axis=2, dtype=np.int64)
    dev, li = target.device_tasks, target.device_level
    usable = count[:, li] >= target.num[dev]
    usable &= cpu_free[:, None] >= target.cpu[dev]
    if target.constrained:
        usable &= target.type_ok[dev][:, np.maximum(gpu_type, 0)].T & (gpu_type[:, None] >= 0)
    frag = np.where(usable, small[:, li], idle[:, None]) @ target.prob[dev]
    return frag + idle * target.cpu_only_prob


def node_stranded(
    gpu_free: np.ndarray, cpu_free: np.ndarray, mem_free: np.ndarray, target: TargetWorkload
) -> np.ndarray:
    """Idle device milli-units a node cannot sell for lack of CPU or memory.

    The workload asks, on average, ``cpu_per_milli`` CPU (its CPU-only tasks included) and
    ``mem_per_milli`` memory with each device milli-unit it asks. A node whose free CPU covers
    only ``c`` of its ``idle`` milli at that rate strands ``idle - c``: those devices can be
    sold only by starving the CPU work the same workload brings along.
    """
    idle = gpu_free.sum(axis=1).astype(np.float64)
    cover = idle.copy()
    if target.cpu_per_milli > 0:
        cover = np.minimum(cover, cpu_free / target.cpu_per_milli)
    if target.mem_per_milli > 0:
        cover = np.minimum(cover, mem_free / target.mem_per_milli)
    return idle - cover
