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


def jct_quantiles(result: Any, points: int = 101) -> dict[str, Any]:
    """JCT of the completed jobs in the measured window at ``points`` evenly spaced
    fractions (0 to 1): what the report draws the JCT distribution from."""
    j = result.jct[result.window_slice()]
    j = j[~np.isnan(j)] / 3600.0
    q = np.linspace(0.0, 1.0, points)
    hours = np.quantile(j, q) if len(j) else np.zeros(0)
    return {
        "jobs": int(len(j)),
        "fraction": [round(float(x), 4) for x in q] if len(j) else [],
        "hours": [float(f"{h:.6g}") for h in hours],
    }


def policy_times(result: Any) -> dict[str, list[float]]:
    """Each policy call of the run (the LP for the LP policies, in the rounds that recompute
    the allocation): its simulated time (hours) and its wall time (seconds)."""
    s = result.series
    return {
        "at_hours": [round(float(t) / 3600.0, 4) for t in s.policy_at],
        "seconds": [float(f"{x:.4g}") for x in s.policy_seconds],
    }


def sim_doc(result: Any) -> dict[str, Any]:
    """One simulation result as ``cpool simulate/compare --json`` writes it: the summary, the
    timeline, the JCT distribution (everything the report draws) and the per-call policy
    time."""
    return {
        **result.summary(),
        "timeline": sim_timeline(result),
        "jct": jct_quantiles(result),
        "policy_time": policy_times(result),
    }
