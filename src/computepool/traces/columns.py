"""Build a columnar ``Workload`` from per-row values without per-job ``Job`` objects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from computepool.model.job import JobKind
from computepool.model.throughput import Throughputs
from computepool.model.workload import JobClass, Workload


@dataclass
class WorkloadColumns:
    """Row-wise accumulator: append one job at a time, then ``build()`` the Workload."""

    name: str = ""
    arrival: list[float] = field(default_factory=list)
    total_steps: list[float] = field(default_factory=list)
    job_class: list[int] = field(default_factory=list)
    tenant: list[int] = field(default_factory=list)
    weight: list[float] = field(default_factory=list)
    deadline: list[float] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    _classes: dict[JobClass, int] = field(default_factory=dict)
    _tenants: dict[str, int] = field(default_factory=dict)

    def add(
        self,
        *,
        job_id: str,
        job_type: str,
        scale_factor: int,
        total_steps: float,
        arrival: float,
        tenant: str = "default",
        weight: float = 1.0,
        deadline: float = float("nan"),
        kind: JobKind = JobKind.TRAIN,
        accelerators: Sequence[str] = (),
    ) -> None:
        cls = JobClass(job_type, int(scale_factor), kind, True, (), tuple(accelerators))
        self.job_class.append(self._classes.setdefault(cls, len(self._classes)))
        self.tenant.append(self._tenants.setdefault(tenant, len(self._tenants)))
        self.arrival.append(arrival)
        self.total_steps.append(total_steps)
        self.weight.append(weight)
        self.deadline.append(deadline)
        self.ids.append(job_id)

    def build(self, *, relative_to_first: bool = False) -> Workload:
        arrival = np.asarray(self.arrival, dtype=np.float64)
        if relative_to_first and len(arrival):
            arrival = arrival - arrival.min()
        return Workload(
            arrival=arrival,
            job_class=np.asarray(self.job_class, dtype=np.int32),
            total_steps=np.asarray(self.total_steps, dtype=np.float64),
            classes=list(self._classes),
            tenant=np.asarray(self.tenant, dtype=np.int32),
            tenants=list(self._tenants) or ["default"],
            weight=np.asarray(self.weight, dtype=np.float64),
            deadline=np.asarray(self.deadline, dtype=np.float64),
            ids=list(self.ids),
            name=self.name,
        )


def resolve_throughputs(throughputs: Throughputs | None) -> Throughputs:
    """The given table, or Gavel's shipped one (without the pair table, which readers never need)."""
    if throughputs is not None:
        return throughputs
    from computepool.catalog.throughputs import load_throughputs

    return load_throughputs("gavel", with_pairs=False)


def generic_rate(throughputs: Throughputs, scale_factor: int, reference: str, file: str) -> float:
    """Steps/s of a ``generic`` job of ``scale_factor`` accelerators on ``reference``."""
    from computepool.model.throughput import GENERIC
    from computepool.traces.errors import TraceError

    rate = throughputs.rate(GENERIC, scale_factor, reference)
    if rate <= 0:
        raise TraceError(
            file,
            f"reference accelerator {reference!r} is not in the catalog",
            field="reference_accelerator",
        )
    return rate
