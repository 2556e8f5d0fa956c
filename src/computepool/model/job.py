"""Job: a unit of work submitted by a tenant."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class JobKind(enum.StrEnum):
    TRAIN = "train"
    PREPROCESS = "preprocess"
    SERVE = "serve"


@dataclass(frozen=True, slots=True)
class Dataset:
    """A dataset a job reads: its legal class, where it comes from and where it is stored."""

    name: str
    data_class: str = "general"
    #: Jurisdiction the data was collected in (CN, EU, SG, ...).
    origin: str = ""
    #: Region the bytes sit in; a job running elsewhere reads it remotely (a transfer).
    stored_in: str = ""
    size_gb: float = 0.0
    #: Number of natural persons whose personal information it holds (for threshold rules).
    persons: int | None = None
    anonymised: bool = False
    #: The personal-information handler (data controller) the data belongs to, e.g. the
    #: automaker; per-year person counters and approvals are kept per handler.
    handler: str = ""


@dataclass(frozen=True, slots=True)
class Job:
    """A unit of work (Kueue's Workload).

    ``total_steps`` is in the units of the ``Throughputs`` table for ``job_type`` (iterations
    for Gavel's measured models; reference-accelerator seconds for the ``generic`` type).
    """

    id: str
    tenant: str = "default"
    kind: JobKind = JobKind.TRAIN
    job_type: str = "generic"
    workers: int = 1
    accel_per_worker: float = 1.0
    gang: bool = True
    #: Software stacks the job's code runs on; empty means any.
    stacks: tuple[str, ...] = ()
    #: Accelerator types the job may use (``gpu_spec``); empty means any.
    accelerators: tuple[str, ...] = ()
    total_steps: float = 0.0
    arrival: float = 0.0
    priority: int = 0
    weight: float = 1.0
    #: Seconds after arrival by which the job should finish (SLO); None for none.
    deadline: float | None = None
    preemptible: bool = True
    datasets: tuple[Dataset, ...] = ()
    command: str | None = None
    cpu_milli_per_worker: int = 0
    memory_mib_per_worker: int = 0
    env: tuple[tuple[str, str], ...] = field(default=())

    @property
    def scale_factor(self) -> int:
        """Accelerators the whole job holds while running (at least 1)."""
        return max(1, round(self.workers * self.accel_per_worker))
