"""Binding a round's starts: device slots, the checks' last word, and the start counts.

``place_starts`` frees the slots of stopped jobs and binds starts to slots through the optional
``Placer`` (a gang whole or not at all); ``confirm_starts`` lets each ``ProfileCheck`` with a
``confirm_starts`` hook accept or refuse the starts (with a delay and a cost for accepted ones);
``count_starts`` records the round's starts and preemptions in ``JobHistory``. Each refused or
unplaced start is unset (-1) in the round's flavor-per-row array and stays queued.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from computepool.model.workload import Workload
from computepool.scheduler.admission_masks import ProfileCheck
from computepool.scheduler.interfaces import Placement, Placer
from computepool.scheduler.state import JobHistory


def place_starts(
    placer: Placer,
    row_job: np.ndarray,
    new: np.ndarray,
    stop_jobs: np.ndarray,
    start_rows: np.ndarray,
    now: float,
) -> tuple[list[Placement], np.ndarray]:
    """Free the slots of stopped jobs, then bind starts to slots (a gang whole or not at all).
    Rows left unplaced are unset in ``new``; returns the placements and the placed rows."""
    placements: list[Placement] = []
    if len(stop_jobs):
        placer.release(stop_jobs)
    if len(start_rows):
        placements, placed = placer.place(row_job[start_rows], new[start_rows], now)
        new[start_rows[~placed]] = -1
        start_rows = start_rows[placed]
    return placements, start_rows


def confirm_starts(
    checks: Sequence[ProfileCheck],
    placer: Placer | None,
    workload: Workload,
    history: JobHistory,
    row_job: np.ndarray,
    new: np.ndarray,
    start_rows: np.ndarray,
    now: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Let each check with ``confirm_starts`` have the last word on the starts, in order.

    Refused starts are unset in ``new`` (and their slots freed); the cost of accepted ones goes
    onto the job's cost. Returns the starting rows and each one's start delay."""
    start_delay = np.zeros(len(start_rows))
    for check in checks:
        confirm = getattr(check, "confirm_starts", None)
        if confirm is None or len(start_rows) == 0:
            continue
        ok, delay, cost = confirm(workload, row_job[start_rows], new[start_rows], now)
        ok = np.asarray(ok, dtype=bool)
        if not ok.all():
            if placer is not None:
                placer.release(row_job[start_rows[~ok]])
            new[start_rows[~ok]] = -1
        history.cost_usd[row_job[start_rows[ok]]] += np.asarray(cost)[ok]
        start_delay = start_delay[ok] + np.asarray(delay)[ok]
        start_rows = start_rows[ok]
    return start_rows, start_delay


def count_starts(
    history: JobHistory, stop_jobs: np.ndarray, start_jobs: np.ndarray, now: float
) -> None:
    """Count the round's preemptions and starts; a first start is stamped ``now``."""
    history.preemptions[stop_jobs] += 1
    history.starts[start_jobs] += 1
    fresh = np.isnan(history.first_start[start_jobs])
    history.first_start[start_jobs[fresh]] = now
