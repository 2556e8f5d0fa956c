"""The controller's state of one service (or mux group) between rounds."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from computepool.model.status import Status
from computepool.serving.perf import ShapeTable
from computepool.serving.replay import Group, ServiceReplay
from computepool.serving.service import ServiceSpec


@dataclass
class ServiceState:
    spec: ServiceSpec
    shapes: ShapeTable
    usable: np.ndarray
    replay: ServiceReplay
    status: Status
    #: The previous period's requests (load statistics only: sizing before any are seen).
    past: ServiceReplay
    groups: list[Group] = field(default_factory=list)
    hist_t: list[float] = field(default_factory=list)
    hist_rate: list[float] = field(default_factory=list)
    hist_need: list[float] = field(default_factory=list)
    #: Mux groups (serving/mux.py): the group state a cold service is served by, and a
    #: group's member states with each merged request's (member, index in its stream).
    member_of: int | None = None
    members: tuple[int, ...] = ()
    member_pos: tuple[np.ndarray, np.ndarray] | None = None
    #: Prefill/decode disaggregation (serving/disagg.py): a prefill pool's services (its
    #: ``member_pos`` then indexes them) and each merged request's KV transfer seconds; a
    #: service whose prompts a pool prefills keeps its full shapes here (``shapes``: decode).
    prefill_for: tuple[int, ...] = ()
    transfer: np.ndarray | None = None
    full_shapes: ShapeTable | None = None
    #: (time, need) of the SLO-replay sizing rounds (``sizing_history_s``)
    slo_hist: list[tuple[float, float]] = field(default_factory=list)
    preemptions: int = 0
    capped: int = 0  # rounds in which max_replicas or the pool stopped a scale-up
    shape_seconds: dict[int, float] = field(default_factory=dict)  # accelerator-s per shape

    @property
    def replicas(self) -> int:
        return sum(g.count for g in self.groups)

    def devices(self) -> float:
        return float(sum(g.count * self.shapes.devices[g.shape] for g in self.groups))
