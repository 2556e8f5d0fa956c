"""Filter plugins: which nodes can take one request at all (vectorised over candidates)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import numpy as np

from computepool.placement.request import PodRequest
from computepool.placement.state import SlotState


def fits_cpu_memory(state: SlotState, nodes: np.ndarray, req: PodRequest) -> np.ndarray:
    return (state.cpu_free[nodes] >= req.cpu_milli) & (state.mem_free[nodes] >= req.memory_mib)


def fits_devices(state: SlotState, nodes: np.ndarray, req: PodRequest) -> np.ndarray:
    """Enough devices with ``gpu_milli`` free (padding slots hold 0, so never count)."""
    if req.num_gpu == 0:
        return np.ones(len(nodes), dtype=bool)
    return (state.gpu_free[nodes] >= req.gpu_milli).sum(axis=1) >= req.num_gpu


def fits_type(state: SlotState, nodes: np.ndarray, req: PodRequest) -> np.ndarray:
    """The node's accelerator type is one the request accepts (``gpu_spec``)."""
    if req.num_gpu == 0:
        return np.ones(len(nodes), dtype=bool)
    t = state.gpu_type[nodes]
    return (t >= 0) & state.type_mask(req.gpu_spec)[np.maximum(t, 0)]


FilterFn = Callable[[SlotState, np.ndarray, PodRequest], np.ndarray]

FILTERS: Mapping[str, FilterFn] = MappingProxyType(
    {
        "cpu-memory": fits_cpu_memory,
        "gpu-type": fits_type,
        "devices": fits_devices,
    }
)
DEFAULT_FILTERS = ("cpu-memory", "gpu-type", "devices")
