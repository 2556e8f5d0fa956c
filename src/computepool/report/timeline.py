"""What ``cpool simulate --json`` adds for ``cpool report``: utilisation per flavor and queue
length over simulated time (NumPy only: no plotting imports on the simulate path)."""

from __future__ import annotations

from typing import Any

import numpy as np


def sim_timeline(result: Any, points: int = 120) -> dict[str, Any]:
    """Utilisation per flavor and queue length over simulated time, sampled at ``points``
    instants: what ``cpool simulate --json`` adds so ``cpool report`` can draw it."""
    t, util = result.utilization_timeline()
    if len(t) == 0:
        return {"t_hours": [], "utilization": {}, "queued": [], "capacity": {}}
    step = max(len(t) // points, 1)
    ser = result.series_arrays()
    queued = np.interp(t[::step], ser["t0"], ser["queued"]) if len(ser["t0"]) else t[::step] * 0
    return {
        "t_hours": [round(float(x) / 3600.0, 4) for x in t[::step]],
        "utilization": {
            f: [round(float(v), 4) for v in util[::step, k]] for k, f in enumerate(result.flavors)
        },
        "queued": [round(float(q), 2) for q in queued],
        "capacity": {f: int(c) for f, c in zip(result.flavors, result.capacity, strict=True)},
    }
