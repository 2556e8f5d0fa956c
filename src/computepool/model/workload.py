"""Workload: many jobs as columns (NumPy arrays), so a million of them fit and vectorise.

A job's static description is split into a *class* (job type, scale factor, kind, gang, accepted
stacks and accelerator types: what decides its speed and feasibility per flavor) and a *data
profile* (the datasets it reads: what decides where it may legally run). Jobs share classes and
profiles, so per-flavor masks and rates are computed once per class/profile, not once per job.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from computepool.model.job import Dataset, Job, JobKind


@dataclass(frozen=True, slots=True)
class JobClass:
    job_type: str
    scale_factor: int
    kind: JobKind = JobKind.TRAIN
    gang: bool = True
    stacks: tuple[str, ...] = ()
    accelerators: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, int]:
        return (self.job_type, self.scale_factor)


@dataclass
class Workload:
    """Columns over jobs 0..N-1, in arrival order."""

    arrival: np.ndarray  # float64 seconds
    job_class: np.ndarray  # int32 index into classes
    total_steps: np.ndarray  # float64
    classes: list[JobClass]
    tenant: np.ndarray = field(default=None)  # type: ignore[assignment]  # int32 into tenants
    tenants: list[str] = field(default_factory=lambda: ["default"])
    weight: np.ndarray = field(default=None)  # type: ignore[assignment]  # float64
    deadline: np.ndarray = field(default=None)  # type: ignore[assignment]  # float64, nan = none
    data_profile: np.ndarray = field(default=None)  # type: ignore[assignment]  # int32
    profiles: list[tuple[Dataset, ...]] = field(default_factory=lambda: [()])
    #: External ids (strings) when the source had them; None means "the index is the id".
    ids: list[str] | None = None
    name: str = ""
    #: bool per job: may be preempted to make room for services ("spot"); default all True.
    preemptible: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = len(self.arrival)
        self.arrival = np.asarray(self.arrival, dtype=np.float64)
        self.job_class = np.asarray(self.job_class, dtype=np.int32)
        self.total_steps = np.asarray(self.total_steps, dtype=np.float64)
        if self.tenant is None:
            self.tenant = np.zeros(n, dtype=np.int32)
        if self.weight is None:
            self.weight = np.ones(n)
        if self.deadline is None:
            self.deadline = np.full(n, np.nan)
        if self.data_profile is None:
            self.data_profile = np.zeros(n, dtype=np.int32)
        if self.preemptible is None:
            self.preemptible = np.ones(n, dtype=bool)
        self.preemptible = np.asarray(self.preemptible, dtype=bool)
        for col in (
            "job_class",
            "total_steps",
            "tenant",
            "weight",
            "deadline",
            "data_profile",
            "preemptible",
        ):
            if len(getattr(self, col)) != n:
                raise ValueError(
                    f"workload column {col!r} has {len(getattr(self, col))} rows, expected {n}"
                )
        if n and np.any(np.diff(self.arrival) < 0):
            order = np.argsort(self.arrival, kind="stable")
            self._reorder(order)

    def _reorder(self, order: np.ndarray) -> None:
        for col in (
            "arrival",
            "job_class",
            "total_steps",
            "tenant",
            "weight",
            "deadline",
            "data_profile",
            "preemptible",
        ):
            setattr(self, col, getattr(self, col)[order])
        if self.ids is not None:
            self.ids = [self.ids[i] for i in order]

    def __len__(self) -> int:
        return len(self.arrival)

    @property
    def scale_factor(self) -> np.ndarray:
        sf = np.array([c.scale_factor for c in self.classes], dtype=np.int64)
        return sf[self.job_class] if len(self.classes) else np.zeros(0, dtype=np.int64)

    def job_id(self, i: int) -> str:
        return self.ids[i] if self.ids is not None else str(i)

    def job(self, i: int) -> Job:
        c = self.classes[int(self.job_class[i])]
        d = float(self.deadline[i])
        return Job(
            id=self.job_id(i),
            tenant=self.tenants[int(self.tenant[i])],
            kind=c.kind,
            job_type=c.job_type,
            workers=c.scale_factor,
            accel_per_worker=1.0,
            gang=c.gang,
            stacks=c.stacks,
            accelerators=c.accelerators,
            total_steps=float(self.total_steps[i]),
            arrival=float(self.arrival[i]),
            weight=float(self.weight[i]),
            deadline=None if np.isnan(d) else d,
            datasets=self.profiles[int(self.data_profile[i])],
            preemptible=bool(self.preemptible[i]),
        )

    def slice(self, start: int, stop: int) -> Workload:
        sl = slice(start, stop)
        return Workload(
            arrival=self.arrival[sl],
            job_class=self.job_class[sl],
            total_steps=self.total_steps[sl],
            classes=self.classes,
            tenant=self.tenant[sl],
            tenants=self.tenants,
            weight=self.weight[sl],
            deadline=self.deadline[sl],
            data_profile=self.data_profile[sl],
            profiles=self.profiles,
            ids=None if self.ids is None else self.ids[sl],
            name=self.name,
            preemptible=self.preemptible[sl],
        )

    @classmethod
    def from_jobs(cls, jobs: Iterable[Job], name: str = "") -> Workload:
        jobs = list(jobs)
        class_ix: dict[JobClass, int] = {}
        tenant_ix: dict[str, int] = {}
        profile_ix: dict[tuple[Dataset, ...], int] = {(): 0}
        jc, tn, dp = [], [], []
        for j in jobs:
            c = JobClass(
                j.job_type, j.scale_factor, j.kind, j.gang, tuple(j.stacks), tuple(j.accelerators)
            )
            jc.append(class_ix.setdefault(c, len(class_ix)))
            tn.append(tenant_ix.setdefault(j.tenant, len(tenant_ix)))
            dp.append(profile_ix.setdefault(tuple(j.datasets), len(profile_ix)))
        return cls(
            arrival=np.array([j.arrival for j in jobs], dtype=np.float64),
            job_class=np.array(jc, dtype=np.int32),
            total_steps=np.array([j.total_steps for j in jobs], dtype=np.float64),
            classes=list(class_ix),
            tenant=np.array(tn, dtype=np.int32),
            tenants=list(tenant_ix) or ["default"],
            weight=np.array([j.weight for j in jobs], dtype=np.float64),
            deadline=np.array([np.nan if j.deadline is None else j.deadline for j in jobs]),
            data_profile=np.array(dp, dtype=np.int32),
            profiles=list(profile_ix),
            ids=[j.id for j in jobs],
            name=name,
            preemptible=np.array([j.preemptible for j in jobs], dtype=bool),
        )

    def append(self, jobs: Sequence[Job]) -> np.ndarray:
        """Add jobs at the end (a live pool grows as jobs are submitted); return their indices.

        Existing indices never change, and ``arrival`` is not re-sorted: a live source hands
        out indices itself. New classes, tenants and profiles are added to the end of their
        lists. One call per batch: each call copies the columns once.
        """
        start = len(self)
        if not jobs:
            return np.zeros(0, dtype=np.int64)
        class_ix = {c: i for i, c in enumerate(self.classes)}
        tenant_ix = {t: i for i, t in enumerate(self.tenants)}
        profile_ix = {p: i for i, p in enumerate(self.profiles)}
        jc, tn, dp = [], [], []
        for j in jobs:
            c = JobClass(
                j.job_type, j.scale_factor, j.kind, j.gang, tuple(j.stacks), tuple(j.accelerators)
            )
            jc.append(class_ix.setdefault(c, len(class_ix)))
            tn.append(tenant_ix.setdefault(j.tenant, len(tenant_ix)))
            dp.append(profile_ix.setdefault(tuple(j.datasets), len(profile_ix)))
        self.classes = list(class_ix)
        self.tenants = list(tenant_ix)
        self.profiles = list(profile_ix)
        cols = {
            "arrival": np.array([j.arrival for j in jobs], dtype=np.float64),
            "job_class": np.array(jc, dtype=np.int32),
            "total_steps": np.array([j.total_steps for j in jobs], dtype=np.float64),
            "tenant": np.array(tn, dtype=np.int32),
            "weight": np.array([j.weight for j in jobs], dtype=np.float64),
            "deadline": np.array([np.nan if j.deadline is None else j.deadline for j in jobs]),
            "data_profile": np.array(dp, dtype=np.int32),
            "preemptible": np.array([j.preemptible for j in jobs], dtype=bool),
        }
        for col, new in cols.items():
            setattr(
                self,
                col,
                np.concatenate([getattr(self, col), new.astype(getattr(self, col).dtype)]),
            )
        if self.ids is not None or start == 0:
            self.ids = [*(self.ids or []), *(j.id for j in jobs)]
        else:
            self.ids = [*(str(i) for i in range(start)), *(j.id for j in jobs)]
        return np.arange(start, start + len(jobs), dtype=np.int64)

    @classmethod
    def empty(cls, name: str = "") -> Workload:
        """A workload with no jobs yet (a live pool's, filled with ``append``)."""
        z = np.zeros(0)
        return cls(arrival=z, job_class=z, total_steps=z, classes=[], tenants=[], name=name)

    def jobs(self, indices: Sequence[int] | None = None) -> list[Job]:
        idx = range(len(self)) if indices is None else indices
        return [self.job(int(i)) for i in idx]
