"""Small slot states for placement tests."""

from __future__ import annotations

from pathlib import Path

from computepool.placement.state import SlotState

DATA = Path(__file__).parent / "data"
NODES = DATA / "openb_nodes_excerpt.csv"
PODS = DATA / "openb_pods_excerpt.csv"


def state(spec: list[tuple[str, int]], cpu: int = 64_000, mem: int = 256_000, islands=None):
    """``spec``: (model, devices) per node."""
    return SlotState.build(
        [f"n{i}" for i in range(len(spec))],
        [m for m, _ in spec],
        [c for _, c in spec],
        [cpu] * len(spec),
        [mem] * len(spec),
        islands=islands,
    )
