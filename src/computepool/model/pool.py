"""Node, Flavor and Pool: every region, node and accelerator the operator runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from computepool.model.accelerator import AcceleratorType
from computepool.model.region import Region


@dataclass(frozen=True, slots=True)
class Node:
    """A host in a region with ``count`` accelerators of one type, inside one topology island."""

    name: str
    region: str
    accelerator: str
    count: int
    island: str = ""
    cpu_milli: int = 0
    memory_mib: int = 0


@dataclass(frozen=True, slots=True, order=True)
class Flavor:
    """(region, accelerator type): the unit quotas, prices and allocations are expressed in."""

    region: str
    accelerator: str

    @property
    def name(self) -> str:
        return f"{self.region}/{self.accelerator}"

    @classmethod
    def parse(cls, text: str) -> Flavor:
        region, _, accel = text.partition("/")
        if not accel:
            raise ValueError(f"flavor {text!r} is not of the form REGION/ACCELERATOR")
        return cls(region, accel)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Pool:
    """The "one computer": regions, accelerator types and nodes.

    Flavors are ordered (region, accelerator) and indexed 0..F-1; ``capacity`` and
    ``node_flavor`` are arrays over that index so the scheduler works on vectors.
    """

    name: str
    accelerators: Mapping[str, AcceleratorType]
    regions: Mapping[str, Region]
    nodes: tuple[Node, ...]
    #: Round-trip time in milliseconds between regions, keyed by (a, b) with a <= b.
    rtt_ms: Mapping[tuple[str, str], float] = field(default_factory=dict)
    #: Inter-region bandwidth in Gbit/s, keyed like ``rtt_ms``.
    bandwidth_gbps: Mapping[tuple[str, str], float] = field(default_factory=dict)
    description: str = ""

    @cached_property
    def flavors(self) -> tuple[Flavor, ...]:
        return tuple(sorted({Flavor(n.region, n.accelerator) for n in self.nodes}))

    @cached_property
    def flavor_index(self) -> dict[Flavor, int]:
        return {f: i for i, f in enumerate(self.flavors)}

    @cached_property
    def node_flavor(self) -> np.ndarray:
        """Flavor index of each node (int32 array, one entry per node)."""
        idx = self.flavor_index
        return np.fromiter(
            (idx[Flavor(n.region, n.accelerator)] for n in self.nodes),
            dtype=np.int32,
            count=len(self.nodes),
        )

    @cached_property
    def node_count(self) -> np.ndarray:
        return np.fromiter((n.count for n in self.nodes), dtype=np.int32, count=len(self.nodes))

    @cached_property
    def capacity(self) -> np.ndarray:
        """Accelerators per flavor (int64 array over flavor index)."""
        return np.bincount(
            self.node_flavor, weights=self.node_count, minlength=len(self.flavors)
        ).astype(np.int64)

    @cached_property
    def flavor_accelerators(self) -> tuple[AcceleratorType, ...]:
        return tuple(self.accelerators[f.accelerator] for f in self.flavors)

    @cached_property
    def flavor_regions(self) -> tuple[Region, ...]:
        return tuple(self.regions[f.region] for f in self.flavors)

    @cached_property
    def flavor_price(self) -> np.ndarray:
        """USD per accelerator-hour per flavor (``AcceleratorType.hourly_price``)."""
        return np.array([a.hourly_price for a in self.flavor_accelerators])

    @cached_property
    def flavor_power_kw(self) -> np.ndarray:
        """Facility power per busy accelerator, kW: TDP x region PUE."""
        return np.array(
            [
                a.tdp_w / 1000.0 * r.pue
                for a, r in zip(self.flavor_accelerators, self.flavor_regions, strict=True)
            ]
        )

    @cached_property
    def flavor_energy_price(self) -> np.ndarray:
        return np.array([r.electricity_usd_per_kwh for r in self.flavor_regions])

    @cached_property
    def flavor_carbon(self) -> np.ndarray:
        """Grid carbon intensity per flavor, g CO2 per kWh."""
        return np.array([r.carbon_g_per_kwh for r in self.flavor_regions])

    @cached_property
    def flavor_stack(self) -> tuple[str, ...]:
        return tuple(a.stack for a in self.flavor_accelerators)

    @property
    def total_accelerators(self) -> int:
        return int(self.capacity.sum())

    def rtt(self, a: str, b: str) -> float:
        if a == b:
            return self.rtt_ms.get((a, a), 0.0)
        return self.rtt_ms[(a, b) if a <= b else (b, a)]

    def summary(self) -> dict[str, int]:
        return {f.name: int(c) for f, c in zip(self.flavors, self.capacity, strict=True)}
