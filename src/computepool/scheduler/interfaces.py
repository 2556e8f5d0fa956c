"""The seams between the scheduling core and the world: Clock, Cluster, JobSource.

The core never does I/O. Each round it reads what the ``Cluster`` observed, decides, and hands
the ``Cluster`` a ``RoundPlan``. ``SimulatedCluster`` (sim), the local process backend and the
Ray backend implement ``Cluster``; tests use a recording fake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from computepool.model.job import Job

_EMPTY_I = np.zeros(0, dtype=np.int64)
_EMPTY_F = np.zeros(0, dtype=np.float64)


@dataclass(frozen=True)
class Placement:
    """Where one started job's workers go: node index and device slots per worker."""

    job: int
    flavor: int
    #: (node index, device indices) per worker; empty when the cluster places by count only.
    workers: tuple[tuple[int, tuple[int, ...]], ...] = ()
    #: False when a gang had to span nodes/islands it would rather not (runs slower).
    consolidated: bool = True
    #: Speed relative to a consolidated placement (e.g. Gavel's unconsolidated ratio).
    rate_factor: float = 1.0


@dataclass(frozen=True)
class RoundPlan:
    """What the cluster must change now. Jobs not named keep running (lease extended)."""

    now: float
    round_seconds: float
    stop: np.ndarray = field(default_factory=lambda: _EMPTY_I)  # job indices to preempt
    start: np.ndarray = field(default_factory=lambda: _EMPTY_I)  # job indices to start
    start_flavor: np.ndarray = field(default_factory=lambda: _EMPTY_I)
    placements: tuple[Placement, ...] = ()
    #: Jobs the scheduler gave up on (cancelled / rejected while running).
    kill: np.ndarray = field(default_factory=lambda: _EMPTY_I)
    #: Seconds each started job waits before it makes progress (e.g. copying its data from
    #: another region); empty means none. Aligned with ``start``.
    start_delay: np.ndarray = field(default_factory=lambda: _EMPTY_F)
    #: Space sharing: job each started job shares its devices with (-1: alone); empty means
    #: all alone. Aligned with ``start``; a pair's two jobs are both in ``start``.
    start_partner: np.ndarray = field(default_factory=lambda: _EMPTY_I)


@dataclass(frozen=True)
class Observation:
    """What happened on the cluster since the last observation."""

    now: float
    completed: np.ndarray = field(default_factory=lambda: _EMPTY_I)
    completed_at: np.ndarray = field(default_factory=lambda: _EMPTY_F)
    #: Jobs whose workers failed (node loss, crash): they are requeued.
    failed: np.ndarray = field(default_factory=lambda: _EMPTY_I)
    #: Jobs whose program ended in error (non-zero exit): they leave the pool as failed.
    errored: np.ndarray = field(default_factory=lambda: _EMPTY_I)
    errored_at: np.ndarray = field(default_factory=lambda: _EMPTY_F)
    #: Steps done so far by jobs still running (whatever the cluster knows).
    progress_job: np.ndarray = field(default_factory=lambda: _EMPTY_I)
    progress_steps: np.ndarray = field(default_factory=lambda: _EMPTY_F)
    #: Why each errored job failed (job -> reason), where the cluster knows more than "exited
    #: with an error" (a start that failed, an exit code, records that do not parse).
    errored_reason: dict[int, str] = field(default_factory=dict)
    #: The cluster's capacity changed (a node lost or back): waiting jobs are re-decided.
    capacity_changed: bool = False
    #: Starts of the last plan that did not happen (job -> why), as the loop that applied it
    #: reported them: those jobs wait again, with the reason.
    start_failed: dict[int, str] = field(default_factory=dict)

    @classmethod
    def of_exits(
        cls,
        now: float,
        completed: list[tuple[int, float]],
        errored: list[tuple[int, float]],
        failed: list[int],
        reasons: dict[int, str] | None = None,
    ) -> Observation:
        """From a live backend's (job, end time) lists of exits and its failed jobs (and why
        errored jobs failed)."""

        def split(pairs: list[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
            jobs = np.asarray([j for j, _ in pairs], dtype=np.int64)
            return jobs, np.asarray([t for _, t in pairs], dtype=np.float64)

        done, done_at = split(completed)
        err, err_at = split(errored)
        failed_ = np.asarray(failed, dtype=np.int64)
        return cls(now, done, done_at, failed_, err, err_at, errored_reason=dict(reasons or {}))


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep_until(self, t: float) -> None: ...


class Cluster(Protocol):
    def observe(self, now: float) -> Observation: ...

    def apply(self, plan: RoundPlan) -> object:
        """Carry out ``plan``; None, or an ``Applied`` naming the starts that did not happen."""
        ...

    def next_event_time(self) -> float:
        """Earliest time something is known to happen (a completion); inf if unknown."""
        ...


class JobSource(Protocol):
    """Where jobs come from: a workload's arrivals (sim) or the submission queue (live)."""

    def arrivals(self, now: float) -> list[int]:
        """Indices of jobs that arrived up to ``now`` and were not returned before."""
        ...

    def next_arrival(self) -> float: ...

    def exhausted(self) -> bool: ...


class Placer(Protocol):
    """Binds started jobs to node slots (placement: *where*; the policy decides *who*)."""

    def place(
        self, jobs: np.ndarray, flavors: np.ndarray, now: float
    ) -> tuple[list[Placement], np.ndarray]:
        """Place each job on its flavor; return placements and a bool mask of jobs placed.

        All of a gang's workers are placed or none (the mask is False for that job).
        """
        ...

    def release(self, jobs: np.ndarray) -> None:
        """Free the slots of jobs that stopped, finished or failed."""
        ...


class RoundGate(Protocol):
    """Decides which active rows may hold accelerators this round (e.g. tenant quotas).

    ``eligible`` returns a bool mask over rows, or an (n, F) bool matrix of the flavors each
    row may use this round (a row with no allowed flavor is ineligible). A running row that
    becomes ineligible is preempted (e.g. reclaim of borrowed quota).
    """

    def eligible(self, inp: object) -> np.ndarray: ...


class JobSink(Protocol):
    """Optional observer of job lifecycle events (the live store; metrics)."""

    def on_event(self, job: int, kind: str, now: float, detail: str = "") -> None: ...


__all__ = [
    "Clock",
    "Cluster",
    "Job",
    "JobSink",
    "JobSource",
    "Observation",
    "Placement",
    "RoundPlan",
]
