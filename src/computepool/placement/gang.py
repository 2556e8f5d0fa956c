"""Gang placement: all workers of a job at once or none, consolidated where possible.

Topology is node -> island (rack / superpod / network island) -> region. A gang is
*consolidated* when all its workers sit in one island. We try the islands that can hold the
whole gang, tightest first (best fit at island level keeps large islands whole for large
gangs); only when none can, the gang is spread over as few islands as possible (fullest
first) and runs slower. Any failure rolls back what was bound, so a gang is never partial.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from computepool.placement.engine import Binding, PlacementEngine
from computepool.placement.request import PodRequest


@dataclass(frozen=True)
class GangPlacement:
    bindings: tuple[Binding, ...]
    islands: int

    @property
    def consolidated(self) -> bool:
        return self.islands <= 1

    @property
    def nodes(self) -> int:
        return len({b.node for b in self.bindings})


def _bind_all(
    engine: PlacementEngine, workers: Sequence[PodRequest], allowed: np.ndarray
) -> list[Binding] | None:
    done: list[Binding] = []
    for w in workers:
        b = engine.place(w, allowed)
        if b is None:
            for x in reversed(done):
                engine.unbind(x)
            return None
        done.append(b)
    return done


def place_gang(
    engine: PlacementEngine,
    workers: Sequence[PodRequest],
    allowed: np.ndarray | None = None,
    spread: bool = True,
) -> GangPlacement | None:
    """Bind every worker (largest first) within ``allowed`` nodes, or bind nothing."""
    state = engine.state
    allowed = np.ones(len(state), dtype=bool) if allowed is None else allowed
    order = sorted(workers, key=lambda w: (w.total_gpu_milli, w.cpu_milli), reverse=True)
    if len(order) == 1:
        b = engine.place(order[0], allowed)
        return None if b is None else GangPlacement((b,), 1)
    need = sum(w.total_gpu_milli for w in order)
    free = np.where(allowed, state.gpu_free.sum(axis=1), 0)
    per_island = np.bincount(state.island, weights=free, minlength=len(state.islands))
    fits = np.flatnonzero(per_island >= need)
    for isl in fits[np.argsort(per_island[fits], kind="stable")]:
        done = _bind_all(engine, order, allowed & (state.island == isl))
        if done is not None:
            return GangPlacement(tuple(done), 1)
    if not spread or per_island.sum() < need:
        return None
    done = []
    for isl in np.argsort(-per_island, kind="stable"):
        if not len(order):
            break
        here = allowed & (state.island == isl)
        rest = []
        for w in order:
            b = engine.place(w, here)
            if b is None:
                rest.append(w)
            else:
                done.append(b)
        order = rest
    if order:
        for x in reversed(done):
            engine.unbind(x)
        return None
    return GangPlacement(tuple(done), len({int(state.island[b.node]) for b in done}))
