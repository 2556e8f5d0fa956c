"""Job lifecycle in the round loop: joining and leaving the active set, and the events told.

A job is admitted (joins the ``ActiveSet``) or rejected with a Status; while active it may be
requeued (its workers failed), and it leaves as completed, failed (its program errored) or
cancelled. Each transition is written to ``JobHistory.state`` and told to the optional
``JobSink`` as an event. These functions change the state they are given and nothing else; the
Scheduler decides when to call them and talks to the cluster.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from computepool.model.status import Status
from computepool.scheduler.admission_masks import ProfileCheck, rejection_status
from computepool.scheduler.interfaces import JobSink, Observation, Placer
from computepool.scheduler.pairs import PairState
from computepool.scheduler.state import ActiveSet, JobHistory

#: ``JobHistory.state`` values (0: pending or active).
COMPLETED, REJECTED, CANCELLED, FAILED = 1, 2, 3, 4


def emit(sink: JobSink | None, job: int, kind: str, at: float, detail: str = "") -> None:
    """Tell the sink (if any) that ``job`` went through ``kind`` at ``at``."""
    if sink is not None:
        sink.on_event(job, kind, at, detail)


def reindex(active: ActiveSet, history: JobHistory) -> None:
    """Point ``history.row_of`` at each active job's row (after rows were added or removed)."""
    history.row_of[active.job] = np.arange(len(active))


def join(active: ActiveSet, history: JobHistory, jobs: np.ndarray, received: float) -> None:
    """Add admitted jobs to the active set, each with ``received`` seconds on every flavor
    (Gavel starts every job's received time at half a round)."""
    active.add(jobs)
    if len(jobs):
        active.received[-len(jobs) :] = received
    reindex(active, history)


def remove(active: ActiveSet, history: JobHistory, jobs: np.ndarray) -> None:
    """Drop jobs from the active set (finished, failed, rejected or cancelled)."""
    keep = np.ones(len(active), dtype=bool)
    rows = history.row_of[jobs]
    keep[rows[rows >= 0]] = False
    history.row_of[jobs] = -1
    active.keep(keep)
    reindex(active, history)


def reject(
    job: int,
    st: Status,
    now: float,
    rejections: dict[int, Status],
    history: JobHistory,
    sink: JobSink | None,
    checks: Sequence[ProfileCheck],
) -> None:
    """Record ``job`` as rejected with ``st`` (never a success) and tell the sink and every
    check with an ``on_reject`` hook."""
    st = rejection_status(st)
    rejections[job] = st
    history.state[job] = REJECTED
    emit(sink, job, "rejected", now, st.reason)
    for check in checks:
        hook = getattr(check, "on_reject", None)
        if hook is not None:
            hook(job, st, now)


def ended_jobs(obs: Observation) -> tuple[np.ndarray, np.ndarray]:
    """Jobs that left the cluster since the last observation (completed, then errored) and
    when."""
    if len(obs.errored):
        ended = np.concatenate([obs.completed, obs.errored]).astype(np.int64)
        return ended, np.concatenate([obs.completed_at, obs.errored_at])
    return obs.completed, obs.completed_at


def settle(
    obs: Observation,
    ended: np.ndarray,
    ended_at: np.ndarray,
    active: ActiveSet,
    history: JobHistory,
    pairs: PairState,
    placer: Placer | None,
    sink: JobSink | None,
    at: float,
) -> bool:
    """Apply an observation's progress, failures and ends to the job set; True when the set
    changed. Failed jobs are requeued (event at ``at``); ``ended`` ones (``ended_jobs``) leave
    at their own times ``ended_at``."""
    a, h = active, history
    if len(obs.progress_job):
        rows = h.row_of[obs.progress_job]
        ok = rows >= 0
        a.steps_done[rows[ok]] = obs.progress_steps[ok]
    changed = False
    if placer is not None and (len(obs.failed) or len(ended)):
        placer.release(np.concatenate([obs.failed, ended]).astype(np.int64))
    if len(obs.failed):
        rows = h.row_of[obs.failed]
        rows = rows[rows >= 0]
        a.running[rows] = -1
        a.partner[rows] = -1
        pairs.drop_jobs(obs.failed)
        for j in obs.failed:
            emit(sink, int(j), "requeued", at, "workers failed")
        changed = True
    if len(ended):
        h.end[ended] = ended_at
        h.state[obs.completed] = COMPLETED
        h.state[obs.errored] = FAILED
        pairs.drop_jobs(ended)
        remove(a, h, ended)
        for j, t in zip(obs.completed, obs.completed_at, strict=True):
            emit(sink, int(j), "succeeded", float(t))
        why = obs.errored_reason
        for j, t in zip(obs.errored, obs.errored_at, strict=True):
            emit(sink, int(j), "failed", float(t), why.get(int(j), "exited with an error"))
        changed = True
    return changed


def mark_adopted(
    active: ActiveSet,
    history: JobHistory,
    jobs: np.ndarray,
    flavors: np.ndarray,
    started_at: np.ndarray,
) -> None:
    """Admitted ``jobs`` (already in the active set) run on ``flavors`` since ``started_at``:
    they were started before (a control-plane restart), not by this loop."""
    active.running[history.row_of[jobs]] = flavors
    history.starts[jobs] += 1
    history.first_start[jobs] = started_at


def withdrawable(
    active: ActiveSet, history: JobHistory, jobs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Of ``jobs``, those still pending or active, and those of them running (to kill)."""
    history.ensure(int(jobs.max()) + 1)
    jobs = jobs[history.state[jobs] == 0]
    rows = history.row_of[jobs]
    rows = rows[rows >= 0]
    return jobs, active.job[rows[active.running[rows] >= 0]]


def withdraw(
    active: ActiveSet,
    history: JobHistory,
    pairs: PairState,
    jobs: np.ndarray,
    now: float,
    sink: JobSink | None,
    reason: str,
    kind: str = "cancelled",
) -> None:
    """Cancel ``jobs`` (pending or active; running ones already killed): they leave now, as
    ``kind`` (``cancelled``, or ``failed`` when the pool stopped them, e.g. a time limit)."""
    pairs.drop_jobs(jobs)
    remove(active, history, jobs)
    history.state[jobs] = FAILED if kind == "failed" else CANCELLED
    history.end[jobs] = now
    for j in jobs:
        emit(sink, int(j), kind, now, reason)


def unstart(
    start_failed: dict[int, str],
    active: ActiveSet,
    history: JobHistory,
    pairs: PairState,
    placer: Placer | None,
    why_waiting: dict[int, str],
    sink: JobSink | None,
    at: float,
) -> bool:
    """Starts the cluster reported as not done: those jobs never ran since the last step.
    They wait again (not running, their slots freed, the start uncounted), ``requeued`` with
    the cluster's reason (event at ``at``), and the reason is kept in ``why_waiting`` until
    they start. True when any job still in the pool was affected."""
    if not start_failed:
        return False
    jobs = np.asarray(sorted(start_failed), dtype=np.int64)
    jobs = jobs[jobs < len(history.row_of)]
    rows = history.row_of[jobs]
    jobs, rows = jobs[rows >= 0], rows[rows >= 0]
    jobs, rows = jobs[active.running[rows] >= 0], rows[active.running[rows] >= 0]
    if len(jobs) == 0:
        return False
    if placer is not None:
        placer.release(jobs)
    active.running[rows] = -1
    active.partner[rows] = -1
    pairs.drop_jobs(jobs)
    history.starts[jobs] -= 1
    history.first_start[jobs[history.starts[jobs] <= 0]] = np.nan
    for j in jobs.tolist():
        why = str(start_failed[j])[:1000]
        why_waiting[j] = why
        emit(sink, j, "requeued", at, f"start failed: {why}")
    return True
