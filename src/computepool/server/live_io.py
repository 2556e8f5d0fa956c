"""The scheduler's seams onto the store: submissions in (``DbJobSource``), events out (``StoreSink``).

Only the scheduler loop writes a job's ``status`` after submission; the API only inserts jobs
and sets ``cancel_requested``. Events are buffered during a round and written in one
transaction after it: job status, the event log, allocations (placement intervals) and, when
an interval closes, its ledger entry.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from computepool.model.workload import Workload
from computepool.server.db import FINAL, AllocationRow, JobEventRow, JobRow, TenantRow
from computepool.server.jobs import shape, to_job, to_launch
from computepool.server.ledger import close_allocation

if TYPE_CHECKING:
    from computepool.backends.local import Launch, LocalCluster
    from computepool.model.pool import Pool
    from computepool.scheduler.loop import Scheduler


@dataclass
class JobIndex:
    """Workload index <-> stored job id, with what the backend and placer need per index."""

    workload: Workload
    ids: list[int] = field(default_factory=list)
    of_id: dict[int, int] = field(default_factory=dict)
    tenant_id: list[int] = field(default_factory=list)
    launch: dict[int, Launch] = field(default_factory=dict)
    shapes: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: Stored jobs whose spec could not be read: (job id, why); the sink fails them.
    broken: list[tuple[int, str]] = field(default_factory=list)

    def add(self, rows: list[tuple[int, int, str, float, dict, float]]) -> list[int]:
        """rows: (job id, tenant id, tenant name, tenant weight, spec, submitted_at). A row
        whose stored spec cannot be read goes to ``broken`` (job id, why) instead."""
        fresh = [r for r in rows if r[0] not in self.of_id]
        if not fresh:
            return []
        ok, jobs, launches = [], [], []
        for r in fresh:
            job_id, tid, name, w, spec, at = r
            try:
                jobs.append(to_job(job_id, name, w, spec, at))
                launches.append((to_launch(job_id, name, spec, tid), shape(spec)))
            except Exception as exc:  # a stored spec is hostile input too: this job fails
                del jobs[len(launches) :]
                why = f"its stored spec cannot be read: {type(exc).__name__}: {exc}"
                self.broken.append((job_id, why[:1000]))
                continue
            ok.append(r)
        if not ok:
            return []
        idx = self.workload.append(jobs).tolist()
        for k, (job_id, tid, *_), (launch, shp) in zip(idx, ok, launches, strict=True):
            self.ids.append(job_id)
            self.of_id[job_id] = k
            self.tenant_id.append(tid)
            self.launch[k] = launch
            self.shapes[k] = shp
        return idx

    def shape(self, k: int) -> tuple[int, int]:
        return self.shapes[k]


def job_rows_query():
    return select(
        JobRow.id,
        JobRow.tenant_id,
        TenantRow.name,
        TenantRow.weight,
        JobRow.spec,
        JobRow.submitted_at,
    ).join(TenantRow, JobRow.tenant_id == TenantRow.id)


def fail_unreadable(s: Session, broken: list[tuple[int, str]]) -> None:
    """Mark jobs whose stored spec cannot be read failed, with why (the caller commits)."""
    now = time.time()
    for job_id, why in broken:
        done = s.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.status.not_in(FINAL))
            .values(status="failed", finished_at=now, reason=why)
        ).rowcount
        if done:
            s.execute(
                insert(JobEventRow),
                [{"job_id": job_id, "at": now, "kind": "failed", "detail": why}],
            )


class DbJobSource:
    """Arrivals are stored jobs in status ``queued`` (plus those handed over at start-up)."""

    def __init__(self, sessions: sessionmaker, index: JobIndex, batch: int = 50_000) -> None:
        self.sessions, self.index, self.batch = sessions, index, batch
        self.initial: list[int] = []

    def arrivals(self, now: float) -> list[int]:
        out, self.initial = self.initial, []
        with self.sessions() as s:
            q = (
                job_rows_query()
                .where(JobRow.status == "queued", JobRow.cancel_requested.is_(False))
                .order_by(JobRow.id)
                .limit(self.batch)
            )
            rows = [tuple(r) for r in s.execute(q)]
        return out + self.index.add(rows)

    def next_arrival(self) -> float:
        return math.inf

    def exhausted(self) -> bool:
        return False


@dataclass(frozen=True)
class Event:
    job: int
    kind: str
    at: float
    detail: str
    attempt: int = 0
    workers: tuple = ()
    exit_code: int | None = None


_STATUS = {
    "admitted": "admitted",
    "adopted": "running",
    "running": "running",
    "preempted": "admitted",
    "requeued": "admitted",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
    "rejected": "rejected",
}
_CLOSES = {"preempted", "requeued", "succeeded", "failed", "cancelled", "rejected"}
_FINAL = {"succeeded", "failed", "cancelled", "rejected"}


class StoreSink:
    """Buffers the scheduler's lifecycle events; ``flush`` writes them in one transaction."""

    def __init__(self, index: JobIndex, cluster: LocalCluster, pool: Pool) -> None:
        self.index, self.cluster, self.pool = index, cluster, pool
        self.scheduler: Scheduler | None = None
        self.buffer: list[Event] = []
        self.listeners: list = []
        #: Starts that copy data in first: workload index -> (GB, delay s, egress USD), from
        #: the residency check's records; they go on the placement interval (and its ledger).
        self.transfers: dict[int, tuple[float, float, float]] = {}

    def on_event(self, job: int, kind: str, now: float, detail: str = "") -> None:
        attempt, workers, rc = 0, (), None
        if kind in ("running", "adopted"):
            r = self.cluster.running.get(job)
            if r is not None:
                attempt = r.number
                workers = tuple((self.pool.nodes[n].name, list(dev)) for n, dev in r.workers)
        if kind == "failed":
            rc = self.cluster.exit_codes.get(job)
        self.buffer.append(Event(job, kind, now, detail, attempt, workers, rc))

    def flush(self, s: Session) -> list[Event]:
        """Write the buffered events (and fail the jobs whose spec could not be read) in one
        transaction; if it fails they stay buffered."""
        events, self.buffer = self.buffer, []
        broken, self.index.broken = self.index.broken, []
        if not events and not broken:
            return events
        try:
            if broken:
                fail_unreadable(s, broken)
            if events:
                self._write(s, events)
            else:
                s.commit()
        except Exception:
            s.rollback()
            self.buffer = events + self.buffer
            self.index.broken = broken + self.index.broken
            raise
        for listener in self.listeners:
            listener(events)
        return events

    def _write(self, s: Session, events: list[Event]) -> None:
        ids = self.index.ids
        changes: dict[int, dict] = defaultdict(dict)
        rows: list[dict] = []
        closing = {ids[e.job] for e in events if e.kind in _CLOSES}
        open_allocs = (
            {
                a.job_id: a
                for a in s.scalars(
                    select(AllocationRow).where(
                        AllocationRow.job_id.in_(closing), AllocationRow.ended_at.is_(None)
                    )
                )
            }
            if closing
            else {}
        )
        h = self.scheduler.history if self.scheduler is not None else None
        for e in events:
            jid = ids[e.job]
            rows.append({"job_id": jid, "at": e.at, "kind": e.kind, "detail": e.detail})
            c = changes[jid]
            c["status"] = _STATUS.get(e.kind, c.get("status"))
            if e.kind in _CLOSES and jid in open_allocs:
                if open_allocs[jid].id is None:
                    s.flush()
                close_allocation(
                    s, self.pool, open_allocs.pop(jid), self.index.tenant_id[e.job], e.at, e.kind
                )
            if e.kind in ("running", "adopted"):
                c["flavor"] = e.detail if e.kind == "running" else c.get("flavor")
                c["attempts"] = e.attempt
                if h is not None and not math.isnan(h.first_start[e.job]):
                    c["started_at"] = float(h.first_start[e.job])
                if e.kind == "running":
                    moved = self.transfers.pop(e.job, None)
                    a = self._open(s, jid, e, moved)
                    open_allocs[jid] = a
                    if moved is not None:
                        gb, sec, usd = moved
                        detail = f"{gb:,.1f} GB copied in {sec:,.1f} s, egress {usd:,.2f} USD"
                        rows.append(
                            {"job_id": jid, "at": e.at, "kind": "transfer", "detail": detail}
                        )
            if e.kind == "preempted":
                rows.append({"job_id": jid, "at": e.at, "kind": "requeued", "detail": "preempted"})
                if h is not None:
                    c["preemptions"] = int(h.preemptions[e.job])
            if e.kind in _FINAL:
                c["finished_at"] = e.at
                c["reason"] = e.detail
            if e.kind == "succeeded":
                c["exit_code"] = 0
            if e.kind == "failed":
                c["exit_code"] = e.exit_code
            if e.kind == "requeued":
                c["reason"] = e.detail
        for c in changes.values():
            if c.get("flavor") is None:
                c.pop("flavor", None)
        s.execute(insert(JobEventRow), rows)
        # jobs with the very same change (e.g. a batch of admissions) share one UPDATE
        same: dict[tuple, list[int]] = defaultdict(list)
        for jid, c in changes.items():
            same[tuple(sorted(c.items()))].append(jid)
        for items, ids_ in same.items():
            s.execute(update(JobRow).where(JobRow.id.in_(ids_)).values(dict(items)))
        s.commit()

    def _open(
        self, s: Session, jid: int, e: Event, moved: tuple[float, float, float] | None = None
    ) -> AllocationRow:
        gb, sec, usd = moved or (None, None, None)
        a = AllocationRow(
            job_id=jid,
            attempt=e.attempt,
            flavor=e.detail,
            accelerators=int(sum(len(d) for _, d in e.workers)),
            workers=[list(w) for w in e.workers],
            started_at=e.at,
            transfer_gb=gb,
            transfer_s=sec,
            egress_usd=usd,
        )
        s.add(a)
        return a
