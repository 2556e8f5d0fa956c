"""A minimal device-slot assigner behind the ``Placer`` protocol.

Each worker of a started job gets ``per_worker`` devices on one node of the job's flavor: the
node with the fewest free devices that still fit (best fit, so whole nodes stay free for big
gangs), the lowest free device indices on it. A gang is placed whole or not at all. The
placement engine (``computepool.placement``) replaces this when it lands; the live backend
only needs the ``Placer`` calls plus ``claim`` for jobs adopted after a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from computepool.model.pool import Pool
from computepool.scheduler.interfaces import Placement

#: job index -> (workers, devices per worker)
Shape = Callable[[int], tuple[int, int]]


def lowest_bits(mask: int, k: int) -> tuple[int, ...]:
    out = []
    i = 0
    while len(out) < k:
        if mask >> i & 1:
            out.append(i)
        i += 1
    return tuple(out)


class SlotAssigner:
    def __init__(self, pool: Pool, shape: Shape) -> None:
        self.pool, self.shape = pool, shape
        self.free = [(1 << n.count) - 1 for n in pool.nodes]
        self.count = [n.count for n in pool.nodes]
        F = len(pool.flavors)
        self.max_count = [0] * F
        #: per flavor: free-device count -> nodes with exactly that many free (insertion order)
        self.buckets: list[list[dict[int, None]]] = []
        node_flavor = pool.node_flavor.tolist()
        for f in range(F):
            self.max_count[f] = max(
                (c for c, nf in zip(self.count, node_flavor, strict=True) if nf == f), default=0
            )
            self.buckets.append([{} for _ in range(self.max_count[f] + 1)])
        for node, f in enumerate(node_flavor):
            self.buckets[f][self.count[node]][node] = None
        self.node_flavor = node_flavor
        self.held: dict[int, tuple[tuple[int, tuple[int, ...]], ...]] = {}

    def _take(self, node: int, devices: tuple[int, ...]) -> None:
        f = self.node_flavor[node]
        before = self.free[node].bit_count()
        for d in devices:
            self.free[node] &= ~(1 << d)
        del self.buckets[f][before][node]
        self.buckets[f][before - len(devices)][node] = None

    def _give(self, node: int, devices: Iterable[int]) -> None:
        f = self.node_flavor[node]
        before = self.free[node].bit_count()
        devices = tuple(devices)
        for d in devices:
            self.free[node] |= 1 << d
        del self.buckets[f][before][node]
        self.buckets[f][before + len(devices)][node] = None

    def _worker(self, flavor: int, k: int) -> tuple[int, tuple[int, ...]] | None:
        buckets = self.buckets[flavor]
        for c in range(k, len(buckets)):
            if buckets[c]:
                node = next(iter(buckets[c]))
                devices = lowest_bits(self.free[node], k)
                self._take(node, devices)
                return node, devices
        return None

    def place(
        self, jobs: np.ndarray, flavors: np.ndarray, now: float
    ) -> tuple[list[Placement], np.ndarray]:
        placed = np.zeros(len(jobs), dtype=bool)
        out: list[Placement] = []
        for i, (j, f) in enumerate(zip(jobs.tolist(), flavors.tolist(), strict=True)):
            workers, per = self.shape(j)
            got: list[tuple[int, tuple[int, ...]]] = []
            for _ in range(workers):
                w = self._worker(f, per)
                if w is None:
                    break
                got.append(w)
            if len(got) < workers:
                for node, devices in got:
                    self._give(node, devices)
                continue
            self.held[j] = tuple(got)
            placed[i] = True
            out.append(Placement(j, f, tuple(got)))
        return out, placed

    def release(self, jobs: np.ndarray) -> None:
        for j in np.asarray(jobs).tolist():
            for node, devices in self.held.pop(int(j), ()):
                self._give(node, devices)

    def bind_devices(self, key: int, flavor: int, k: int) -> tuple[int, tuple[int, ...]] | None:
        """Hold ``k`` devices of one node of ``flavor`` under ``key`` (a service replica's,
        negative so it never meets a job index); None when no node has them free."""
        if key in self.held:
            raise ValueError(f"key {key} already holds devices")
        w = self._worker(flavor, k)
        if w is not None:
            self.held[key] = (w,)
        return w

    def claim(self, placement: Placement) -> bool:
        """Mark the slots of an adopted job as held; False if any is already taken."""
        for node, devices in placement.workers:
            if any(not self.free[node] >> d & 1 for d in devices):
                return False
        for node, devices in placement.workers:
            self._take(node, devices)
        self.held[placement.job] = placement.workers
        return True
