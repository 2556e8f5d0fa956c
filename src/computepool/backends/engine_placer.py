"""The placement engine (``computepool.placement``) as the live pool's ``Placer``.

``PoolPlacer`` cuts a job into whole-node workers from its size, as a simulated job has no
processes of its own. A live job's workers are the processes its tenant declared
(``workers`` x ``accelerators_per_worker``), so here each worker is one request of that many
devices on one node, and the engine's profile (``bestfit``, ``fgd``, ...) picks the nodes
and devices, a gang whole or not at all, consolidated in one island where it can be.
``claim`` binds the slots of a job adopted after a restart exactly where its processes run.
"""

from __future__ import annotations

from collections.abc import Callable

from computepool.model.pool import Pool
from computepool.model.throughput import Throughputs
from computepool.model.workload import Workload
from computepool.placement.gang import GangPlacement, place_gang
from computepool.placement.placer import PoolPlacer
from computepool.placement.request import PodRequest
from computepool.placement.state import MILLI
from computepool.scheduler.interfaces import Placement


class LivePlacer(PoolPlacer):
    def __init__(
        self,
        pool: Pool,
        workload: Workload,
        throughputs: Throughputs,
        shape: Callable[[int], tuple[int, int]],
        policy: str = "bestfit",
    ) -> None:
        super().__init__(pool, workload, throughputs, policy)
        self.shape = shape

    def workers(self, job: int, flavor: int) -> list[PodRequest]:
        n, per = self.shape(job)
        return [PodRequest.whole(per)] * n

    def bind_devices(self, key: int, flavor: int, k: int) -> tuple[int, tuple[int, ...]] | None:
        """Hold ``k`` devices of one node of ``flavor`` under ``key`` (a service replica's,
        negative so it never meets a job index), chosen by the profile; None when none fit."""
        if key in self._held:
            raise ValueError(f"key {key} already holds devices")
        g = place_gang(self.engine, [PodRequest.whole(k)], self._flavor_nodes[flavor])
        if g is None:
            return None
        self._held[key] = g
        b = g.bindings[0]
        return int(b.node), tuple(int(d) for d in b.devices)

    def claim(self, placement: Placement) -> bool:
        """Hold the slots an adopted job's workers run on; False if any is taken."""
        st = self.engine.state
        for node, devices in placement.workers:
            if any(d >= st.gpu_count[node] or st.gpu_free[node, d] < MILLI for d in devices):
                return False
        bindings = tuple(
            self.engine.bind(node, tuple(devices), PodRequest.whole(len(devices)))
            for node, devices in placement.workers
        )
        islands = len({int(st.island[b.node]) for b in bindings})
        self._held[placement.job] = GangPlacement(bindings, islands)
        return True

    def cordon(self, node: int) -> None:
        """Place nothing more on ``node`` (its backend lost it); jobs on it release as usual."""
        self._flavor_nodes[int(self.pool.node_flavor[node])][node] = False

    def uncordon(self, node: int) -> None:
        """``node`` is back: place on it again."""
        self._flavor_nodes[int(self.pool.node_flavor[node])][node] = True
