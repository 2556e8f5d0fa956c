"""The placement engine: filter -> score -> pick a node -> pick devices -> bind.

Scores are node-local (they read only the node's own slots), so the engine caches one score
column per distinct request and, at each decision, recomputes only the nodes whose
``SlotState.version`` changed since that column was last used: a decision costs work
proportional to what changed, not to the pool.

Ties among the best nodes go to the node of lowest *rank*, a random permutation of the nodes
drawn once per engine (per seed). That is what the FGD artifact does (its kube-scheduler fork
picks the lexicographically smallest node name among ties, and the names carry a random
per-seed prefix); it makes every policy fill the same nodes first when it has no preference,
which matters a lot for fragmentation. A profile with ``ties="random"`` gets stock
kube-scheduler's uniform choice instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from computepool.placement.filters import FILTERS
from computepool.placement.frag import TargetWorkload
from computepool.placement.profiles import Profile
from computepool.placement.request import PodRequest
from computepool.placement.scorers import SCORERS, ScoreContext
from computepool.placement.state import MILLI, SlotState


@dataclass(frozen=True, slots=True)
class Binding:
    """One worker bound to a node's devices."""

    node: int
    devices: tuple[int, ...]
    request: PodRequest


class _Column:
    __slots__ = ("score", "device", "stamp")

    def __init__(self, n: int) -> None:
        self.score = np.full(n, -np.inf)
        self.device = np.zeros(n, dtype=np.int16)
        self.stamp = np.full(n, -1, dtype=np.int64)


class PlacementEngine:
    def __init__(
        self,
        state: SlotState,
        profile: Profile,
        target: TargetWorkload | None = None,
        seed: int | np.random.Generator = 0,
    ) -> None:
        if profile.needs_target and target is None:
            raise ValueError(f"placement policy {profile.name!r} needs a target workload")
        self.state, self.profile = state, profile
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.rng = rng
        self.ctx = ScoreContext(state, target, rng)
        self._filters = [FILTERS[f] for f in profile.filters]
        self._scorers = [(SCORERS[s], w) for s, w in profile.scorers]
        self._cols: dict[PodRequest, _Column] = {}
        self.ties = profile.ties
        self.rank = rng.permutation(len(state))

    # ---- scoring -----------------------------------------------------------------------
    def evaluate(self, req: PodRequest, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores (``-inf`` where infeasible) and the device a share would take, per node."""
        ok = np.ones(len(nodes), dtype=bool)
        for f in self._filters:
            ok &= f(self.state, nodes, req)
        score = np.full(len(nodes), -np.inf)
        device = np.zeros(len(nodes), dtype=np.int16)
        cand = nodes[ok]
        if len(cand):
            total = np.zeros(len(cand))
            for fn, w in self._scorers:
                s, dev = fn(self.ctx, cand, req)
                total += w * s
                if dev is not None and fn is self._scorers[0][0]:
                    device[ok] = dev
            score[ok] = total
        return score, device

    def _column(self, req: PodRequest) -> _Column:
        col = self._cols.get(req)
        if col is None:
            col = self._cols[req] = _Column(len(self.state))
        stale = np.flatnonzero(col.stamp != self.state.version)
        if len(stale):
            col.score[stale], col.device[stale] = self.evaluate(req, stale)
            col.stamp[stale] = self.state.version[stale]
        return col

    def choose(self, req: PodRequest, allowed: np.ndarray | None = None) -> int:
        """Best feasible node for ``req`` (among ``allowed`` if given), or -1."""
        col = self._column(req)
        score = col.score if allowed is None else np.where(allowed, col.score, -np.inf)
        best = score.max()
        if best == -np.inf:
            return -1
        ties = np.flatnonzero(score == best)
        if len(ties) == 1:
            return int(ties[0])
        if self.ties == "rank":
            return int(ties[np.argmin(self.rank[ties])])
        return int(ties[self.rng.integers(len(ties))])

    # ---- devices and binding -----------------------------------------------------------
    def devices_for(self, node: int, req: PodRequest) -> tuple[int, ...]:
        if req.num_gpu == 0:
            return ()
        s = self.state
        free = s.gpu_free[node, : s.gpu_count[node]]
        if not req.is_share:
            return tuple(int(d) for d in np.flatnonzero(free == MILLI)[: req.num_gpu])
        fits = np.flatnonzero(free >= req.gpu_milli)
        how = self.profile.device
        if how == "scorer":
            return (int(self._column(req).device[node]),)
        if how == "random":
            return (int(fits[self.rng.integers(len(fits))]),)
        return (int(fits[np.argmin(free[fits])]),)

    def bind(self, node: int, devices: tuple[int, ...], req: PodRequest) -> Binding:
        self.state.allocate(node, devices, req.gpu_milli, req.cpu_milli, req.memory_mib)
        self.ctx.on_bind(node, req, +1)
        return Binding(node, devices, req)

    def unbind(self, b: Binding) -> None:
        r = b.request
        self.state.release(b.node, b.devices, r.gpu_milli, r.cpu_milli, r.memory_mib)
        self.ctx.on_bind(b.node, r, -1)

    def place(self, req: PodRequest, allowed: np.ndarray | None = None) -> Binding | None:
        """Place one worker: choose a node, its devices, and bind them; None if nowhere fits."""
        node = self.choose(req, allowed)
        if node < 0:
            return None
        return self.bind(node, self.devices_for(node, req), req)

    def cluster_frag(self) -> float:
        return self.ctx.cluster_frag()
