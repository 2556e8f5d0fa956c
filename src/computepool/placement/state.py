"""Node and device-slot state: what is free on every node, as NumPy arrays.

One ``SlotState`` holds, for N nodes of at most G devices each:

* ``gpu_free`` (N x G, int32): free milli-units per device (1000 = one whole device);
  padding slots of nodes with fewer than G devices hold 0 and ``gpu_count`` says how many exist.
* ``cpu_free`` / ``mem_free`` (N, int64): free milli-CPU and MiB; ``*_cap`` the capacities.
* ``gpu_type`` (N, int16): index into ``types`` (accelerator type names); ``-1`` = no device.
* ``island`` / ``region`` (N, int32): topology indices into ``islands`` / ``regions``.
* ``version`` (N, int64): bumped on every change of a node, so scorers can cache per node.

The simulator, ``cpool pack`` and the live backends all bind and free slots through this class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

MILLI = 1000
#: CPU / memory capacity used when a pool does not track them (its nodes say 0).
UNTRACKED = np.int64(2**62)


@dataclass
class SlotState:
    names: tuple[str, ...]
    types: tuple[str, ...]
    gpu_type: np.ndarray
    gpu_count: np.ndarray
    gpu_free: np.ndarray
    cpu_cap: np.ndarray
    mem_cap: np.ndarray
    cpu_free: np.ndarray = field(default=None)  # type: ignore[assignment]
    mem_free: np.ndarray = field(default=None)  # type: ignore[assignment]
    island: np.ndarray = field(default=None)  # type: ignore[assignment]
    islands: tuple[str, ...] = ("",)
    region: np.ndarray = field(default=None)  # type: ignore[assignment]
    regions: tuple[str, ...] = ("",)
    #: Flavor index per node when built from a ``Pool`` (else all 0).
    flavor: np.ndarray = field(default=None)  # type: ignore[assignment]
    version: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = len(self.names)
        self.gpu_type = np.asarray(self.gpu_type, dtype=np.int16)
        self.gpu_count = np.asarray(self.gpu_count, dtype=np.int16)
        self.gpu_free = np.asarray(self.gpu_free, dtype=np.int32).reshape(n, -1)
        self.cpu_cap = np.asarray(self.cpu_cap, dtype=np.int64)
        self.mem_cap = np.asarray(self.mem_cap, dtype=np.int64)
        if self.cpu_free is None:
            self.cpu_free = self.cpu_cap.copy()
        if self.mem_free is None:
            self.mem_free = self.mem_cap.copy()
        zeros = np.zeros(n, dtype=np.int32)
        self.island = zeros.copy() if self.island is None else np.asarray(self.island, np.int32)
        self.region = zeros.copy() if self.region is None else np.asarray(self.region, np.int32)
        self.flavor = zeros.copy() if self.flavor is None else np.asarray(self.flavor, np.int32)
        if self.version is None:
            self.version = np.zeros(n, dtype=np.int64)
        for name in ("gpu_type", "gpu_count", "cpu_cap", "mem_cap", "island", "region"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"slot state column {name!r} has the wrong length (want {n})")

    # ---- construction -----------------------------------------------------------------
    @classmethod
    def build(
        cls,
        names: Sequence[str],
        gpu_models: Sequence[str],
        gpu_counts: Sequence[int],
        cpu_milli: Sequence[int],
        memory_mib: Sequence[int],
        islands: Sequence[str] | None = None,
        regions: Sequence[str] | None = None,
        flavors: Sequence[int] | None = None,
    ) -> SlotState:
        """Fresh (all free) state; a node with 0 devices has model ``""``."""
        n = len(names)
        counts = np.asarray(gpu_counts, dtype=np.int16)
        g = max(int(counts.max()) if n else 0, 1)
        types = tuple(sorted({m for m, c in zip(gpu_models, counts, strict=True) if c > 0 and m}))
        tix = {t: i for i, t in enumerate(types)}
        gtype = np.array(
            [tix[m] if c > 0 and m else -1 for m, c in zip(gpu_models, counts, strict=True)],
            dtype=np.int16,
        )
        free = np.where(np.arange(g)[None, :] < counts[:, None], MILLI, 0).astype(np.int32)
        cpu = np.asarray(cpu_milli, dtype=np.int64)
        mem = np.asarray(memory_mib, dtype=np.int64)
        isl_names, isl = _index(islands if islands is not None else [""] * n)
        reg_names, reg = _index(regions if regions is not None else [""] * n)
        return cls(
            names=tuple(names),
            types=types,
            gpu_type=gtype,
            gpu_count=counts,
            gpu_free=free,
            cpu_cap=np.where(cpu > 0, cpu, UNTRACKED),
            mem_cap=np.where(mem > 0, mem, UNTRACKED),
            island=isl,
            islands=isl_names,
            region=reg,
            regions=reg_names,
            flavor=np.asarray(flavors if flavors is not None else np.zeros(n), dtype=np.int32),
        )

    @classmethod
    def from_pool(cls, pool: object) -> SlotState:
        """State of a ``computepool.model.pool.Pool`` (node order kept; islands per region)."""
        nodes = pool.nodes  # type: ignore[attr-defined]
        return cls.build(
            [n.name for n in nodes],
            [n.accelerator for n in nodes],
            [n.count for n in nodes],
            [n.cpu_milli for n in nodes],
            [n.memory_mib for n in nodes],
            islands=[f"{n.region}/{n.island or n.name}" for n in nodes],
            regions=[n.region for n in nodes],
            flavors=pool.node_flavor,  # type: ignore[attr-defined]
        )

    # ---- queries -----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.names)

    @property
    def max_devices(self) -> int:
        return int(self.gpu_free.shape[1])

    @property
    def total_gpu_milli(self) -> int:
        return int(self.gpu_count.sum()) * MILLI

    def used_gpu_milli(self) -> int:
        return self.total_gpu_milli - int(self.gpu_free.sum())

    def type_mask(self, allowed: frozenset[str]) -> np.ndarray:
        """Bool over ``types``: which accelerator types a request's ``gpu_spec`` allows."""
        if not allowed:
            return np.ones(len(self.types), dtype=bool)
        return np.array([t in allowed for t in self.types], dtype=bool)

    def copy(self) -> SlotState:
        return SlotState(
            names=self.names,
            types=self.types,
            gpu_type=self.gpu_type,
            gpu_count=self.gpu_count,
            gpu_free=self.gpu_free.copy(),
            cpu_cap=self.cpu_cap,
            mem_cap=self.mem_cap,
            cpu_free=self.cpu_free.copy(),
            mem_free=self.mem_free.copy(),
            island=self.island,
            islands=self.islands,
            region=self.region,
            regions=self.regions,
            flavor=self.flavor,
            version=self.version.copy(),
        )

    # ---- changes -----------------------------------------------------------------------
    def allocate(
        self, node: int, devices: Sequence[int], milli: int, cpu: int = 0, mem: int = 0
    ) -> None:
        """Take ``milli`` from each of ``devices`` and cpu/mem from ``node``; all or nothing."""
        dev = np.asarray(devices, dtype=np.int64)
        if len(dev) and (dev.max() >= self.gpu_count[node] or dev.min() < 0):
            raise ValueError(f"node {self.names[node]}: no device {devices}")
        if len(np.unique(dev)) != len(dev):
            raise ValueError(f"node {self.names[node]}: device listed twice in {devices}")
        if len(dev) and (self.gpu_free[node, dev] < milli).any():
            raise ValueError(
                f"node {self.names[node]}: devices {list(devices)} have less than {milli} milli free"
            )
        if self.cpu_free[node] < cpu or self.mem_free[node] < mem:
            raise ValueError(f"node {self.names[node]}: not enough CPU or memory free")
        self.gpu_free[node, dev] -= milli
        self.cpu_free[node] -= cpu
        self.mem_free[node] -= mem
        self.version[node] += 1

    def release(
        self, node: int, devices: Sequence[int], milli: int, cpu: int = 0, mem: int = 0
    ) -> None:
        dev = np.asarray(devices, dtype=np.int64)
        if len(dev) and (self.gpu_free[node, dev] + milli > MILLI).any():
            raise ValueError(f"node {self.names[node]}: releasing more than a device holds")
        if self.cpu_free[node] + cpu > self.cpu_cap[node]:
            raise ValueError(f"node {self.names[node]}: releasing more CPU than it has")
        if self.mem_free[node] + mem > self.mem_cap[node]:
            raise ValueError(f"node {self.names[node]}: releasing more memory than it has")
        self.gpu_free[node, dev] += milli
        self.cpu_free[node] += cpu
        self.mem_free[node] += mem
        self.version[node] += 1


def _index(labels: Sequence[str]) -> tuple[tuple[str, ...], np.ndarray]:
    names: dict[str, int] = {}
    idx = np.fromiter((names.setdefault(x, len(names)) for x in labels), dtype=np.int32)
    return tuple(names), idx
