"""Group commit for submissions: one writer thread stores many jobs per transaction.

Request handlers hand a validated submission to the writer and wait for its result. The
writer takes whatever has queued up (up to ``max_batch``) and writes it in one transaction:
idempotency keys looked up in one query, jobs and their ``queued`` events inserted in bulk.
Under load that turns N commits into one (the disk flush and SQLite's single write lock are
paid once per batch), and no two threads of this process fight for the SQLite lock (the
scheduler loop's writes take the same ``write_lock``). If a batch fails as a whole, each
submission is retried on its own, so one bad request cannot fail its neighbours.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from types import SimpleNamespace

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from computepool.model.pool import Pool
from computepool.server import store
from computepool.server.budget import BudgetExceeded, Reserver, begin_exclusive, lock_tenants
from computepool.server.db import JobEventRow, JobRow, limit_idle
from computepool.server.schemas import JobSpec
from computepool.server.wakeup import notify


@dataclass(frozen=True)
class Submission:
    principal: store.Principal
    spec: JobSpec
    key: str | None
    future: Future
    #: USD per accelerator-hour of the dearest flavor it may run on (its USD reservation).
    price: float = 0.0


def _row(sub: Submission, now: float) -> dict:
    spec = sub.spec
    return {
        "tenant_id": sub.principal.tenant_id,
        "name": spec.name,
        "status": "queued",
        "spec": spec.model_dump(mode="json", exclude={"idempotency_key"}),
        "accelerators": spec.accelerators,
        "idempotency_key": sub.key,
        "request_hash": store.request_hash(spec) if sub.key else None,
        "submitted_at": now,
        "reason": "",
        "attempts": 0,
        "preemptions": 0,
        "cancel_requested": False,
    }


def write_batch(
    s: Session, batch: list[Submission], pool: Pool | None = None
) -> list[tuple[JobRow, bool] | Exception]:
    """Store a batch of submissions in the session's transaction (the caller commits).

    New jobs get their time limit and, for a tenant with a budget, their reservation; one the
    budget cannot hold is answered with ``BudgetExceeded`` and not stored (``budget.py``)."""
    begin_exclusive(s)
    now = time.time()
    rows = [_row(b, now) for b in batch]
    out: list[tuple[JobRow, bool] | Exception | None] = [None] * len(batch)
    keyed = [i for i, b in enumerate(batch) if b.key]
    existing: dict[tuple[int, str], JobRow] = {}
    if keyed:
        keys = {batch[i].key for i in keyed}
        tenants = {batch[i].principal.tenant_id for i in keyed}
        for r in s.scalars(
            select(JobRow).where(JobRow.idempotency_key.in_(keys), JobRow.tenant_id.in_(tenants))
        ):
            existing[(r.tenant_id, r.idempotency_key)] = r
    first_in_batch: dict[tuple[int, str], int] = {}
    new: list[int] = []
    for i, b in enumerate(batch):
        k = (b.principal.tenant_id, b.key) if b.key else None
        hit = existing.get(k) if k else None
        if hit is not None:
            if hit.request_hash != rows[i]["request_hash"]:
                out[i] = store.Conflict(
                    "idempotency_key",
                    f"key {b.key!r} was used for a different request (job {hit.id})",
                )
            else:
                out[i] = (hit, False)
        elif k is not None and k in first_in_batch:
            out[i] = -1 - first_in_batch[k]  # type: ignore[assignment]  # resolved below
        else:
            if k is not None:
                first_in_batch[k] = i
            new.append(i)
    if new and pool is not None:
        new = _reserve(s, pool, batch, rows, new, out, now)
    if new:
        ids = s.scalars(
            insert(JobRow).returning(JobRow.id, sort_by_parameter_order=True),
            [rows[i] for i in new],
        ).all()
        s.execute(
            insert(JobEventRow),
            [{"job_id": j, "at": now, "kind": "queued", "detail": ""} for j in ids],
        )
        for i, j in zip(new, ids, strict=True):
            # a plain record (not an ORM instance: no session state to set up per job)
            fresh = {"flavor": None, "started_at": None, "finished_at": None, "exit_code": None}
            out[i] = (SimpleNamespace(id=j, **fresh, **rows[i]), True)  # type: ignore[assignment]
    for i, o in enumerate(out):
        if isinstance(o, int):
            first = out[-1 - o]
            if isinstance(first, tuple) and first[0].request_hash != rows[i]["request_hash"]:
                out[i] = store.Conflict(
                    "idempotency_key", f"key {batch[i].key!r} was used for a different request"
                )
            elif isinstance(first, tuple):
                out[i] = (first[0], False)
            else:
                out[i] = first
    return out  # type: ignore[return-value]


def _reserve(
    s: Session,
    pool: Pool,
    batch: list[Submission],
    rows: list[dict],
    new: list[int],
    out: list,
    now: float,
) -> list[int]:
    """Limits and reservations onto the new rows, in order; the refused ones drop out."""
    tenants = lock_tenants(s, (batch[i].principal.tenant_id for i in new))
    r = Reserver(s, pool, tenants, now)
    kept = []
    for i in new:
        b = batch[i]
        try:
            lim = r.limits(b.principal.tenant_id, b.spec, b.price)
        except BudgetExceeded as exc:
            out[i] = exc
            continue
        rows[i].update(
            time_limit_s=lim.time_limit_s,
            reserved_accel_hours=lim.reserved_accel_hours,
            reserved_usd=lim.reserved_usd,
        )
        kept.append(i)
    return kept


class SubmissionWriter:
    def __init__(
        self,
        sessions: sessionmaker,
        write_lock: threading.Lock,
        max_batch: int = 256,
        pool: Pool | None = None,
        idle_s: float | None = None,
    ) -> None:
        self.sessions, self.lock, self.max_batch = sessions, write_lock, max_batch
        #: PostgreSQL: a transaction of this writer idle this long ends its session (it holds
        #: tenants' row locks: a paused server must not block the others' submissions).
        self.idle_s = idle_s
        #: Meters open placement intervals for budgets; None: no limits, no reservations.
        self.pool = pool
        self._q: queue.SimpleQueue[Submission | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="cpool-writer", daemon=True)
        self._thread.start()

    def submit(
        self, principal: store.Principal, spec: JobSpec, key: str | None, price: float
    ) -> Future:
        """Queue a submission; ``price``: USD per accelerator-hour of the dearest flavor it may
        run on (``budget.dearest_price``), for its USD reservation."""
        fut: Future = Future()
        self._q.put(Submission(principal, spec, key, fut, price))
        return fut

    def close(self) -> None:
        self._q.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._write(batch)
            if stop:
                return

    def _write(self, batch: list[Submission]) -> None:
        try:
            with self.lock, self.sessions() as s:
                if self.idle_s is not None:
                    limit_idle(s, self.idle_s)
                results = write_batch(s, batch, self.pool)
                notify(s)  # the leader may be another server
                s.commit()
        except Exception:  # the batch as a whole failed: each on its own
            results = [self._one(b) for b in batch]
        for b, r in zip(batch, results, strict=True):
            if isinstance(r, Exception):
                b.future.set_exception(r)
            else:
                b.future.set_result(r)

    def _one(self, b: Submission) -> tuple[JobRow, bool] | Exception:
        try:
            with self.lock, self.sessions() as s:
                if self.idle_s is not None:
                    limit_idle(s, self.idle_s)
                result = write_batch(s, [b], self.pool)[0]
                notify(s)
                s.commit()
                return result
        except Exception as exc:
            return exc
