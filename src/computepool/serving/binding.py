"""A service's replicas bound to device slots through the live pool's placer, as jobs are.

``ServiceSlots`` is the ``Supervisor``'s ``slots``: a replica of ``devices`` accelerators takes
that many devices of one node of the service's flavor from the placer (``bind_devices`` of the
slot assigner or the placement engine) under a negative key that never meets a job index, and
gives them back when it stops for good (a restart keeps them). Packed replicas (a fraction of a
device each) share a bound device, ``round(1 / devices)`` to one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from computepool.serving.supervisor import Replica


class DevicePlacer(Protocol):
    def bind_devices(self, key: int, flavor: int, k: int) -> tuple[int, tuple[int, ...]] | None: ...

    def release(self, jobs: np.ndarray) -> None: ...


def replica_keys() -> Iterator[int]:
    """Keys for replicas' slots: -1, -2, ... (job indices are >= 0)."""
    return itertools.count(-1, -1)


@dataclass
class Group:
    node: int
    devices: tuple[int, ...]
    #: The replicas in the group (``id`` of each: a replica's port may be chosen on its node).
    members: set[int] = field(default_factory=set)


@dataclass
class ServiceSlots:
    placer: DevicePlacer
    flavor: int
    devices: float  # per replica
    keys: Iterator[int] = field(default_factory=replica_keys)
    groups: dict[int, Group] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return max(math.ceil(self.devices - 1e-9), 1)

    @property
    def per_group(self) -> int:
        return 1 if self.devices >= 1 else max(round(1 / self.devices), 1)

    def take(self, r: Replica) -> bool:
        for g in self.groups.values():
            if len(g.members) < self.per_group:
                break
        else:
            key = next(self.keys)
            got = self.placer.bind_devices(key, self.flavor, self.size)
            if got is None:
                return False
            g = self.groups[key] = Group(got[0], got[1])
        g.members.add(id(r))
        r.node, r.devices = g.node, g.devices
        return True

    def give(self, r: Replica) -> None:
        for key, g in list(self.groups.items()):
            if id(r) in g.members:
                g.members.discard(id(r))
                if not g.members:
                    del self.groups[key]
                    self.placer.release(np.array([key], dtype=np.int64))
                return

    def held(self) -> int:
        """Devices this service holds now."""
        return len(self.groups) * self.size
