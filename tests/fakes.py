"""Fakes for the scheduler seams (Nomad's harness idea): record what the core asked for."""

from __future__ import annotations

import numpy as np

from computepool.scheduler.interfaces import Observation, Placement, RoundPlan


class RecordingCluster:
    """A Cluster that only records plans; jobs never finish unless ``finish`` is called."""

    def __init__(self) -> None:
        self.plans: list[RoundPlan] = []
        self._done: list[tuple[int, float]] = []

    def finish(self, job: int, at: float) -> None:
        self._done.append((job, at))

    def observe(self, now: float) -> Observation:
        done = [(j, t) for j, t in self._done if t <= now]
        self._done = [(j, t) for j, t in self._done if t > now]
        return Observation(
            now=now,
            completed=np.array([j for j, _ in done], dtype=np.int64),
            completed_at=np.array([t for _, t in done], dtype=float),
        )

    def apply(self, plan: RoundPlan) -> None:
        self.plans.append(plan)

    def next_event_time(self) -> float:
        return min((t for _, t in self._done), default=float("inf"))


class CountingPlacer:
    """Places by count per flavor, refusing jobs listed in ``refuse``."""

    def __init__(self, refuse: set[int] | None = None) -> None:
        self.refuse = refuse or set()
        self.placed: list[int] = []
        self.released: list[int] = []

    def place(self, jobs, flavors, now):
        mask = np.array([int(j) not in self.refuse for j in jobs], dtype=bool)
        self.placed += [int(j) for j in jobs[mask]]
        return [
            Placement(int(j), int(f)) for j, f in zip(jobs[mask], flavors[mask], strict=True)
        ], mask

    def release(self, jobs) -> None:
        self.released += [int(j) for j in jobs]


class TenantGate:
    """Eligible rows: only tenants in ``allowed``."""

    def __init__(self, allowed: set[int]) -> None:
        self.allowed = allowed

    def eligible(self, inp):
        return np.isin(inp.tenant, list(self.allowed))
