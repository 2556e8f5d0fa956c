"""Start-up reconciliation: make the store and the backend agree after a crash or a restart.

For every job the store holds as not finished, the backend's newest attempt decides:

| attempt found                         | what happens                                        |
| ------------------------------------- | --------------------------------------------------- |
| none                                  | the job waits in the queue (it never started)       |
| workers still running, not stopping   | **adopted**: the scheduler takes it over as running |
| launch cut short (ranks never started)| adopted, and the missing ranks are started now      |
| ended on its own, all exit codes 0    | succeeded (at the time the last worker ended)       |
| ended on its own, an exit code != 0   | failed                                              |
| being stopped, or some worker lost    | what is left is killed; the job is requeued         |
| already closed by the control plane   | its recorded outcome is applied                     |
| records unreadable (corrupt, forged)  | what is left is killed; the job fails with the why  |

A job with a cancel request is cancelled (its workers killed). Attempts of jobs that are
finished in the store are killed if anything of them still runs. So no job is lost, and none
runs twice: a job is started again only after every earlier attempt of it is gone.

One job's trouble (an attempt record that does not parse, a worker that cannot be restarted,
a store row that cannot be written) fails that job with the reason; recovery never refuses to
start the server because of one job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select

from computepool.backends import attempts as att
from computepool.server.db import ACTIVE, AllocationRow, JobRow
from computepool.server.live_io import Event, job_rows_query

if TYPE_CHECKING:
    from computepool.server.service import LiveService

log = logging.getLogger("computepool.server")


@dataclass
class RecoveryReport:
    adopted: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    killed_orphans: int = 0

    def summary(self) -> dict[str, int]:
        return {k: len(v) if isinstance(v, list) else v for k, v in self.__dict__.items()}


def _latest(records: list[att.AttemptRecord]) -> tuple[dict[str, att.AttemptRecord], list]:
    latest: dict[str, att.AttemptRecord] = {}
    older = []
    for r in sorted(records, key=lambda r: (r.key, r.number)):
        if r.key in latest:
            older.append(latest[r.key])
        latest[r.key] = r
    return latest, older


def _ensure_allocation(svc: LiveService, s, job_id: int, rec: att.AttemptRecord) -> None:
    """An attempt that ran needs its placement interval, attempt count, flavor and start
    time in the store (the crash may have come before the round that recorded them)."""
    job = s.get(JobRow, job_id)
    if job is not None:
        job.attempts = max(job.attempts or 0, rec.number)
        job.flavor = rec.flavor
        if job.started_at is None:
            job.started_at = rec.started_at
    found = s.scalars(
        select(AllocationRow).where(
            AllocationRow.job_id == job_id, AllocationRow.ended_at.is_(None)
        )
    ).first()
    if found is not None:
        return
    s.add(
        AllocationRow(
            job_id=job_id,
            attempt=rec.number,
            flavor=rec.flavor,
            accelerators=sum(len(d) for _, d in rec.workers),
            workers=[[n, list(d)] for n, d in rec.workers],
            started_at=rec.started_at,
        )
    )


def recover(svc: LiveService) -> RecoveryReport:
    rep = RecoveryReport()
    sink, cluster, index = svc.sink, svc.cluster, svc.index
    with svc.sessions() as s:
        rows = s.execute(
            job_rows_query()
            .add_columns(JobRow.status, JobRow.cancel_requested)
            .where(JobRow.status.in_(ACTIVE))
            .order_by(JobRow.id)
        ).all()
    records = cluster.recover()
    latest, older = _latest(records)
    for rec in older:
        if not rec.closed:
            _discard(cluster, rec, "superseded")
            rep.killed_orphans += 1
    active_ids = {r[0] for r in rows}
    for key, rec in latest.items():
        if not rec.closed and (not key.isdigit() or int(key) not in active_ids):
            if rec.state != att.EXITED:
                rep.killed_orphans += 1
            _discard(cluster, rec, "orphan")
    index.add([tuple(r[:6]) for r in rows])
    for job_id, _ in index.broken:  # its spec cannot be read: it fails (in the flush below)
        rec = latest.get(str(job_id))
        if rec is not None and not rec.closed:
            _discard(cluster, rec, "failed")
        rep.failed.append(job_id)
    by_id = {r[0]: (index.of_id[r[0]], r[6], r[7]) for r in rows if r[0] in index.of_id}
    deliver: list[int] = []
    adopt: list[tuple[int, att.AttemptRecord]] = []
    with svc.sessions() as s:
        for job_id, (k, _status, cancel) in by_id.items():
            rec = latest.get(str(job_id))
            try:
                _recover_one(svc, s, job_id, k, cancel, rec, deliver, adopt, rep)
            except Exception as exc:  # this job's trouble: it fails, the others recover
                why = f"cannot recover it: {type(exc).__name__}: {exc}"
                _failed(svc, k, job_id, rec, why, rep)
        s.commit()
    _adopt(svc, adopt, deliver, rep)
    svc.source.initial = deliver
    with svc.write_lock, svc.sessions() as s:
        svc.fence_in(s)  # a take-over lost meanwhile writes nothing
        sink.flush(s)
    return rep


def _discard(cluster, rec: att.AttemptRecord, outcome: str) -> None:
    try:
        cluster.discard(rec, outcome)
    except Exception:
        log.warning("attempt %s: cannot kill what is left of it", rec.dir, exc_info=True)


def _failed(
    svc: LiveService, k: int, job_id: int, rec: att.AttemptRecord | None, why: str, rep
) -> None:
    log.warning("job %s: %s", job_id, why)
    if rec is not None:
        _discard(svc.cluster, rec, "failed")
    at = rec.last_seen if rec is not None else svc.clock.now()
    svc.sink.buffer.append(Event(k, "failed", at, why[:1000]))
    rep.failed.append(job_id)


def _recover_one(
    svc: LiveService,
    s,
    job_id: int,
    k: int,
    cancel: bool,
    rec: att.AttemptRecord | None,
    deliver: list[int],
    adopt: list[tuple[int, att.AttemptRecord]],
    rep: RecoveryReport,
) -> None:
    sink, cluster = svc.sink, svc.cluster
    ran = rec is not None and not (rec.closed and rec.outcome in ("cancelled", "shutdown"))
    if rec is not None and ran and not rec.problem:
        _ensure_allocation(svc, s, job_id, rec)
    if cancel:
        if rec is not None and not rec.closed:
            cluster.discard(rec, "cancelled")
        end = rec.last_seen if rec is not None else svc.clock.now()
        sink.buffer.append(Event(k, "cancelled", end, "cancelled while the server was down"))
        rep.cancelled.append(job_id)
        return
    outcome = _outcome(rec)
    if outcome == "wait":
        deliver.append(k)
        rep.waiting.append(job_id)
    elif outcome == "adopt":
        adopt.append((k, rec))
    elif outcome == "corrupt":
        assert rec is not None
        _failed(svc, k, job_id, rec, rec.problem, rep)
    elif outcome in ("succeeded", "failed"):
        assert rec is not None
        if not rec.closed:
            att.mark_closed(rec.dir, outcome, rec.rc)
        detail = "" if outcome == "succeeded" else f"exit code {rec.rc}"
        end = rec.ended_at or rec.last_seen
        sink.buffer.append(Event(k, outcome, end, detail, exit_code=rec.rc))
        rep.finished.append(job_id)
    else:  # requeue
        assert rec is not None
        if not rec.closed:
            cluster.discard(rec, "lost")
        sink.buffer.append(
            Event(k, "requeued", rec.last_seen, "control plane restarted; workers lost")
        )
        deliver.append(k)
        rep.requeued.append(job_id)


def _outcome(rec: att.AttemptRecord | None) -> str:
    if rec is None:
        return "wait"
    if rec.problem and not rec.closed:
        return "corrupt"
    if rec.closed:
        return rec.outcome if rec.outcome in ("succeeded", "failed") else "requeue"
    if rec.stop_reason is None and rec.state in (att.RUNNING, att.PARTIAL):
        return "adopt"
    if rec.stop_reason is None and rec.state == att.EXITED:
        return "succeeded" if rec.rc == 0 else "failed"
    return "requeue"


def _adopt(
    svc: LiveService,
    adopt: list[tuple[int, att.AttemptRecord]],
    deliver: list[int],
    rep: RecoveryReport,
) -> None:
    ok_jobs, flavors, started = [], [], []
    for k, rec in adopt:
        p = svc.cluster.placement_of(k, rec)
        if p is None or not svc.placer.claim(p):
            _discard(svc.cluster, rec, "lost")
            svc.sink.buffer.append(
                Event(k, "requeued", rec.last_seen, "its slots are no longer in the pool")
            )
            deliver.append(k)
            rep.requeued.append(svc.index.ids[k])
            continue
        try:
            svc.cluster.adopt(k, rec, p)
        except Exception as exc:  # e.g. its missing ranks cannot be started: it fails alone
            svc.placer.release(np.array([k]))
            svc.cluster.running.pop(k, None)
            why = f"cannot adopt it: {exc}" if str(exc) else f"cannot adopt it: {exc!r}"
            _failed(svc, k, svc.index.ids[k], rec, why, rep)
            continue
        ok_jobs.append(k)
        flavors.append(p.flavor)
        started.append(rec.started_at)
    if not ok_jobs:
        return
    mask = svc.loop.adopt(np.array(ok_jobs), np.array(flavors), np.array(started))
    for k, ok in zip(ok_jobs, mask.tolist(), strict=True):
        if ok:
            rep.adopted.append(svc.index.ids[k])
            continue
        rec = dict(adopt)[k]
        svc.placer.release(np.array([k]))
        svc.cluster.running.pop(k, None)
        _discard(svc.cluster, rec, "rejected")
