"""Static feasibility of job classes on flavors: stack, accelerator type, gang size, speed.

A job that no flavor can ever run is rejected at submission with the reason (UNRESOLVABLE),
never queued forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from computepool.model.pool import Pool
from computepool.model.status import Status
from computepool.model.throughput import Throughputs
from computepool.model.workload import JobClass


@dataclass(frozen=True)
class ClassFeasibility:
    """(C, F) rates with every infeasible (class, flavor) at 0, and a status per class."""

    rates: np.ndarray
    status: tuple[Status, ...]


def _why_not(c: JobClass, pool: Pool, rates_row: np.ndarray) -> str:
    stacks = set(pool.flavor_stack)
    if c.stacks and not stacks & set(c.stacks):
        return f"needs stack {'/'.join(c.stacks)} but the pool only has {', '.join(sorted(stacks))}"
    accels = {f.accelerator for f in pool.flavors}
    if c.accelerators and not accels & set(c.accelerators):
        return (
            f"asks for accelerator type {'/'.join(c.accelerators)} "
            f"but the pool has {', '.join(sorted(accels))}"
        )
    largest = int(pool.capacity.max()) if len(pool.capacity) else 0
    if c.scale_factor > largest:
        return (
            f"needs {c.scale_factor} accelerators of one flavor "
            f"but the largest flavor has {largest}"
        )
    if not np.any(rates_row > 0):
        return f"no throughput known for job type {c.job_type!r} on any flavor it may use"
    return "no flavor satisfies all of its constraints together"


def class_feasibility(
    classes: Sequence[JobClass], pool: Pool, throughputs: Throughputs
) -> ClassFeasibility:
    accel_names = [f.accelerator for f in pool.flavors]
    rates = throughputs.class_matrix([c.key for c in classes], accel_names)
    statuses = []
    for i, c in enumerate(classes):
        ok = np.ones(len(pool.flavors), dtype=bool)
        if c.stacks:
            ok &= np.array([s in c.stacks for s in pool.flavor_stack])
        if c.accelerators:
            ok &= np.array([a in c.accelerators for a in accel_names])
        ok &= pool.capacity >= c.scale_factor
        raw = rates[i].copy()
        rates[i] = np.where(ok, rates[i], 0.0)
        if np.any(rates[i] > 0):
            statuses.append(Status.success())
        else:
            statuses.append(Status.unresolvable(_why_not(c, pool, raw), "feasibility"))
    return ClassFeasibility(rates, tuple(statuses))
