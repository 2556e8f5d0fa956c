"""Scheduler state as columns: the active (admitted, unfinished) jobs and per-job history.

Rows of ``ActiveSet`` are kept in admission order; removal compacts with a mask, so per-round
work is vectorised over active rows and never touches finished jobs.
"""

from __future__ import annotations

import numpy as np


def _grow(a: np.ndarray, n: int, fill: float | int) -> np.ndarray:
    if len(a) >= n:
        return a
    new = np.full((max(n, 2 * len(a), 64), *a.shape[1:]), fill, dtype=a.dtype)
    new[: len(a)] = a
    return new


class ActiveSet:
    """Active jobs: one row each, columns as arrays."""

    def __init__(self, num_flavors: int) -> None:
        self.num_flavors = num_flavors
        self.job = np.zeros(0, dtype=np.int64)
        self.steps_done = np.zeros(0)
        self.attained = np.zeros(0)  # accelerator-seconds
        self.received = np.zeros((0, num_flavors))  # seconds on each flavor since last reset
        self.running = np.zeros(0, dtype=np.int64)  # flavor or -1
        #: Job id of the job sharing the row's devices (space sharing), -1 when alone.
        self.partner = np.zeros(0, dtype=np.int64)
        #: Time-share allocation in force (the last LP result) and time owed from earlier
        #: reset periods, per flavor (the round mechanism's memory for time-shared policies).
        self.share = np.zeros((0, num_flavors))
        self.deficit = np.zeros((0, num_flavors))
        #: The row was in the input of the allocation in force (time-shared policies).
        self.allocated = np.zeros(0, dtype=bool)

    def __len__(self) -> int:
        return len(self.job)

    def add(self, jobs: np.ndarray, steps_done: np.ndarray | None = None) -> None:
        k = len(jobs)
        if k == 0:
            return
        self.job = np.concatenate([self.job, jobs.astype(np.int64)])
        sd = np.zeros(k) if steps_done is None else steps_done.astype(float)
        self.steps_done = np.concatenate([self.steps_done, sd])
        self.attained = np.concatenate([self.attained, np.zeros(k)])
        self.received = np.concatenate([self.received, np.zeros((k, self.num_flavors))])
        self.running = np.concatenate([self.running, np.full(k, -1, dtype=np.int64)])
        self.partner = np.concatenate([self.partner, np.full(k, -1, dtype=np.int64)])
        self.share = np.concatenate([self.share, np.zeros((k, self.num_flavors))])
        self.deficit = np.concatenate([self.deficit, np.zeros((k, self.num_flavors))])
        self.allocated = np.concatenate([self.allocated, np.zeros(k, dtype=bool)])

    def keep(self, mask: np.ndarray) -> None:
        cols = ("job", "steps_done", "attained", "received", "running", "partner", "share")
        for col in (*cols, "deficit", "allocated"):
            setattr(self, col, getattr(self, col)[mask])


class JobHistory:
    """Per-job outcome columns over every job ever seen (grows for a live pool)."""

    def __init__(self, n: int = 0) -> None:
        self.first_start = np.full(n, np.nan)
        self.end = np.full(n, np.nan)
        self.accel_seconds = np.zeros(n)
        self.cost_usd = np.zeros(n)
        self.energy_kwh = np.zeros(n)
        self.carbon_kg = np.zeros(n)
        self.preemptions = np.zeros(n, dtype=np.int32)
        self.starts = np.zeros(n, dtype=np.int32)
        self.row_of = np.full(n, -1, dtype=np.int64)
        #: 0 pending/active, 1 completed, 2 rejected, 3 cancelled, 4 failed (``lifecycle``)
        self.state = np.zeros(n, dtype=np.int8)

    def ensure(self, n: int) -> None:
        if n <= len(self.end):
            return
        self.first_start = _grow(self.first_start, n, np.nan)
        self.end = _grow(self.end, n, np.nan)
        self.accel_seconds = _grow(self.accel_seconds, n, 0.0)
        self.cost_usd = _grow(self.cost_usd, n, 0.0)
        self.energy_kwh = _grow(self.energy_kwh, n, 0.0)
        self.carbon_kg = _grow(self.carbon_kg, n, 0.0)
        self.preemptions = _grow(self.preemptions, n, 0)
        self.starts = _grow(self.starts, n, 0)
        self.row_of = _grow(self.row_of, n, -1)
        self.state = _grow(self.state, n, 0)
