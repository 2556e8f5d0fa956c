"""Checks a submission against the pool before it is stored: a job no flavor can ever run
is refused with the field and the reason, never queued forever."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from computepool.admission.feasibility import class_feasibility
from computepool.model.job import Dataset
from computepool.model.pool import Pool
from computepool.model.throughput import GENERIC, Throughputs
from computepool.model.workload import JobClass
from computepool.scheduler.loop import ProfileCheck
from computepool.server.schemas import JobSpec


class Feasibility:
    """Per job class: the flavors it may run on (cached; classes repeat)."""

    def __init__(self, pool: Pool, throughputs: Throughputs) -> None:
        self.pool, self.throughputs = pool, throughputs
        self._cache: dict[JobClass, tuple[np.ndarray, str]] = {}
        node_max = np.zeros(len(pool.flavors), dtype=np.int64)
        np.maximum.at(node_max, pool.node_flavor, pool.node_count)
        self.node_max = node_max

    def flavors(self, c: JobClass) -> tuple[np.ndarray, str]:
        hit = self._cache.get(c)
        if hit is None:
            feas = class_feasibility([c], self.pool, self.throughputs)
            hit = (feas.rates[0] > 0, feas.status[0].reason)
            self._cache[c] = hit
        return hit


def job_class_of(spec: JobSpec) -> JobClass:
    """The scheduler's class of a submitted job (what feasibility and prices are read for)."""
    return JobClass(
        spec.job_type,
        max(1, spec.accelerators),
        spec.kind,
        True,
        tuple(spec.stacks),
        tuple(spec.accelerator_types),
    )


def _field_of(reason: str) -> str:
    if "stack" in reason:
        return "stacks"
    if "accelerator type" in reason:
        return "accelerator_types"
    if "accelerators of one flavor" in reason:
        return "workers"
    if "job type" in reason:
        return "job_type"
    return "accelerator_types"


def submission_errors(
    spec: JobSpec, feas: Feasibility, checks: Sequence[ProfileCheck] = ()
) -> list[tuple[str, str]]:
    pool, tp = feas.pool, feas.throughputs
    errors: list[tuple[str, str]] = []
    unknown = [a for a in spec.accelerator_types if a not in pool.accelerators]
    if unknown:
        have = sorted({f.accelerator for f in pool.flavors})
        errors.append(
            (
                "accelerator_types",
                f"unknown accelerator type {unknown[0]!r}; this pool has {', '.join(have)}",
            )
        )
    if spec.job_type != GENERIC and spec.job_type not in tp.job_types:
        errors.append(
            (
                "job_type",
                f"no throughput known for {spec.job_type!r}; use 'generic' or one of {', '.join(tp.job_types)}",
            )
        )
    if errors:
        return errors
    ok, reason = feas.flavors(job_class_of(spec))
    if not ok.any():
        return [(_field_of(reason), reason)]
    fits = ok & (feas.node_max >= spec.accelerators_per_worker)
    if not fits.any():
        largest = int(feas.node_max[ok].max())
        return [
            (
                "accelerators_per_worker",
                f"{spec.accelerators_per_worker} per worker, but the nodes it may use hold at most {largest}",
            )
        ]
    for check in checks:  # data no rule names would be decided by the fallback: refuse it
        rulebook = getattr(check, "rulebook", None)
        unknown = (
            rulebook.unknown_classes([d.data_class for d in spec.datasets]) if rulebook else []
        )
        if unknown:
            return [(f"datasets[{unknown[0][0]}].data_class", unknown[0][1])]
    datasets = tuple(Dataset(**d.model_dump()) for d in spec.datasets)
    for check in checks:
        mask, status = check.flavor_mask(datasets, pool)
        fits &= mask
        if not fits.any():
            why = status.reason or "no flavor the job may use is allowed for its data"
            rule = status.source.removeprefix("residency:")
            return [("datasets", f"residency rule {rule}: {why}" if rule not in why else why)]
    return []
