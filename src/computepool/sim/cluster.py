"""SimulatedCluster, SimClock and WorkloadSource: the simulator's side of the Scheduler seams.

Running jobs progress at their class's rate on the flavor they were given; each (re)start
costs ``restart_penalty_s`` seconds without progress (checkpoint restore, warm-up). A
preempted job keeps its progress (it restarts from its checkpoint).
"""

from __future__ import annotations

import math

import numpy as np

from computepool.model.workload import Workload
from computepool.scheduler.interfaces import Observation, RoundPlan


def _time_to_finish(steps_left: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """Seconds each running job needs to finish at ``rate`` steps/s (inf at rate 0)."""
    out = np.full(len(rate), np.inf)
    np.divide(steps_left, rate, out=out, where=rate > 0)
    return out


class SimClock:
    """A clock that jumps: ``sleep_until`` returns at once with the time advanced."""

    def __init__(self, start: float = 0.0) -> None:
        self._t = start

    def now(self) -> float:
        return self._t

    def sleep_until(self, t: float) -> None:
        self._t = max(self._t, t)


class WorkloadSource:
    """Arrivals of a ``Workload`` in arrival order."""

    def __init__(self, workload: Workload) -> None:
        self._arrival = workload.arrival
        self._next = 0

    def arrivals(self, now: float) -> list[int]:
        end = int(np.searchsorted(self._arrival, now, side="right"))
        out = list(range(self._next, end))
        self._next = max(self._next, end)
        return out

    def arrivals_array(self, now: float) -> np.ndarray:
        end = int(np.searchsorted(self._arrival, now, side="right"))
        out = np.arange(self._next, max(self._next, end), dtype=np.int64)
        self._next = max(self._next, end)
        return out

    def next_arrival(self) -> float:
        return float(self._arrival[self._next]) if self._next < len(self._arrival) else math.inf

    def exhausted(self) -> bool:
        return self._next >= len(self._arrival)


class SimulatedCluster:
    """Progress of running jobs, as arrays over the running set."""

    def __init__(
        self,
        workload: Workload,
        class_rates: np.ndarray,
        restart_penalty_s: float = 0.0,
        start: float = 0.0,
        pair_rates: np.ndarray | None = None,
    ) -> None:
        self.workload = workload
        self.class_rates = class_rates  # (C, F) steps/s
        #: (C, C, F) steps/s of a class sharing a device set with another (space sharing).
        self.pair_rates = pair_rates
        self.penalty = float(restart_penalty_s)
        self.progress = np.zeros(len(workload))
        self.run_job = np.zeros(0, dtype=np.int64)
        self.run_rate = np.zeros(0)
        self.run_wait = np.zeros(0)  # seconds of restart penalty still to serve
        self.last = start

    def _advance(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        dt = now - self.last
        if dt <= 0 or len(self.run_job) == 0:
            self.last = max(self.last, now)
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        total = self.workload.total_steps[self.run_job]
        prog = self.progress[self.run_job]
        finish_in = self.run_wait + _time_to_finish(total - prog, self.run_rate)
        done = finish_in <= dt + 1e-9
        eff = np.maximum(dt - self.run_wait, 0.0)
        self.progress[self.run_job] = np.minimum(prog + self.run_rate * eff, total)
        self.run_wait = np.maximum(self.run_wait - dt, 0.0)
        completed = self.run_job[done]
        at = self.last + finish_in[done]
        self.progress[completed] = total[done]
        keep = ~done
        self.run_job, self.run_rate, self.run_wait = (
            self.run_job[keep],
            self.run_rate[keep],
            self.run_wait[keep],
        )
        self.last = now
        return completed, at

    def observe(self, now: float) -> Observation:
        completed, at = self._advance(now)
        return Observation(
            now=now,
            completed=completed,
            completed_at=at,
            progress_job=self.run_job,
            progress_steps=self.progress[self.run_job],
        )

    def apply(self, plan: RoundPlan) -> None:
        self._advance(plan.now)
        if len(plan.stop) or len(plan.kill):
            gone = np.zeros(len(self.workload), dtype=bool)  # cheaper than np.isin's sort
            gone[plan.stop] = True
            gone[plan.kill] = True
            keep = ~gone[self.run_job]
            self.run_job, self.run_rate, self.run_wait = (
                self.run_job[keep],
                self.run_rate[keep],
                self.run_wait[keep],
            )
        if len(plan.start):
            cls = self.workload.job_class[plan.start]
            rates = self.class_rates[cls, plan.start_flavor]
            if self.pair_rates is not None and len(plan.start_partner) == len(plan.start):
                mate = plan.start_partner
                shared = mate >= 0
                if shared.any():
                    mcls = self.workload.job_class[mate[shared]]
                    rates = rates.copy()
                    rates[shared] = self.pair_rates[cls[shared], mcls, plan.start_flavor[shared]]
            if plan.placements:
                factor = {p.job: p.rate_factor for p in plan.placements}
                rates = rates * np.array([factor.get(int(j), 1.0) for j in plan.start])
            self.run_job = np.concatenate([self.run_job, plan.start])
            self.run_rate = np.concatenate([self.run_rate, rates])
            wait = np.full(len(plan.start), self.penalty)
            if len(plan.start_delay) == len(plan.start):
                wait = wait + plan.start_delay
            self.run_wait = np.concatenate([self.run_wait, wait])

    def next_event_time(self) -> float:
        if len(self.run_job) == 0:
            return math.inf
        left = self.workload.total_steps[self.run_job] - self.progress[self.run_job]
        return float(self.last + (self.run_wait + _time_to_finish(left, self.run_rate)).min())
