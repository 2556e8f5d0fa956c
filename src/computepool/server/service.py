"""The live pool: the shared ``Scheduler`` on a wall clock, the local backend, the store.

One thread runs rounds: cancel requests -> ``LiveLoop.round()`` (observe the processes,
``Scheduler.plan``: account, admit new submissions, quota gate, policy, placement; then the
loop starts/stops processes as planned) ->
write the round's events, allocations and ledger entries in one transaction -> metrics.
A round runs every ``round_seconds``, or sooner when a submission or a cancel wakes it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from computepool.admission.quota import QuotaGate
from computepool.backends.clock import WallClock
from computepool.backends.engine_placer import LivePlacer
from computepool.backends.local import Launch, LocalCluster
from computepool.backends.sandbox import SandboxStatus
from computepool.backends.slots import SlotAssigner
from computepool.model.pool import Pool
from computepool.model.status import Status
from computepool.model.throughput import Throughputs
from computepool.model.workload import Workload
from computepool.policies.registry import get_policy
from computepool.scheduler.loop import ProfileCheck, Scheduler, SchedulerConfig
from computepool.server import ledger, residency_store, store
from computepool.server.db import FINAL, AllocationRow, JobEventRow, JobRow
from computepool.server.ha import LEADER, STANDBY, FencedCluster
from computepool.server.lease import LeaseLost, StoreLease
from computepool.server.live_io import DbJobSource, Event, JobIndex, StoreSink
from computepool.server.live_loop import LiveLoop
from computepool.server.metrics import Metrics
from computepool.server.recovery import RecoveryReport, recover
from computepool.server.tenant_view import Tenants, TenantView
from computepool.server.validation import Feasibility
from computepool.server.wakeup import listen

log = logging.getLogger("computepool.server")

TIME_LIMIT = "time limit: it held its accelerators for its max_hours"

#: Builds the backend: (pool, data dir, launch of a workload index, grace seconds) -> Cluster.
ClusterFactory = Callable[[Pool, Path, Callable[[int], Launch], float], object]


def local_cluster(
    pool: Pool,
    root: Path,
    describe: Callable[[int], Launch],
    grace_s: float,
    sandbox: SandboxStatus | None = None,
) -> LocalCluster:
    return LocalCluster(pool, root, describe, grace_s=grace_s, sandbox=sandbox)


@dataclass(frozen=True)
class LoopConfig:
    round_seconds: float = 1.0
    #: Shortest gap between two rounds, however often submissions wake the loop.
    min_gap_seconds: float = 0.2
    grace_seconds: float = 10.0
    policy: str = "fifo-sticky"
    #: How often tenants, quotas and budgets are re-read from the store.
    tenant_refresh_seconds: float = 2.0
    stop_jobs_on_exit: bool = False
    #: Placement profile of the placement engine (``bestfit``, ``fgd``, ...), or ``slots``
    #: for the minimal first-fit slot assigner.
    placement: str = "bestfit"


def make_placer(
    name: str, pool: Pool, index: JobIndex, throughputs: Throughputs
) -> SlotAssigner | LivePlacer:
    if name == "slots":
        return SlotAssigner(pool, index.shape)
    return LivePlacer(pool, index.workload, throughputs, index.shape, name)


class LiveService:
    def __init__(
        self,
        pool: Pool,
        throughputs: Throughputs,
        sessions: sessionmaker,
        data_dir: Path,
        config: LoopConfig | None = None,
        checks: Sequence[ProfileCheck] = (),
        metrics: Metrics | None = None,
        audit_records: deque | None = None,
        cluster_factory: ClusterFactory | None = None,
        serving: object | None = None,
        sandbox: SandboxStatus | None = None,
    ) -> None:
        self.pool, self.throughputs, self.sessions = pool, throughputs, sessions
        self.config = cfg = config or LoopConfig()
        self.checks = tuple(checks)
        #: Decisions the admission checks record (residency verdicts), written to the audit log.
        self.audit_records: deque = audit_records if audit_records is not None else deque()
        self.metrics = metrics or Metrics()
        self.feasibility = Feasibility(pool, throughputs)
        self.index = JobIndex(Workload.empty("live"))
        self.clock = WallClock()
        #: How workers are isolated (None: not told; the local backend then runs them as
        #: the server's user, any tenant).
        self.sandbox = sandbox
        describe = self.index.launch.__getitem__
        if cluster_factory is None:
            self.cluster: Any = local_cluster(
                pool, Path(data_dir), describe, cfg.grace_seconds, sandbox
            )
        else:
            self.cluster = cluster_factory(pool, Path(data_dir), describe, cfg.grace_seconds)
        self.placer = make_placer(cfg.placement, pool, self.index, throughputs)
        bind = getattr(self.cluster, "bind_placer", None)
        if bind is not None:  # a backend that loses nodes cordons them in the placer
            bind(self.placer)
        self.gate = QuotaGate(pool.flavors)
        wrap = getattr(self.cluster, "wrap_gate", None)
        if wrap is not None:  # a backend whose flavors come and go (federated clusters)
            self.gate = wrap(self.gate)
        self.source = DbJobSource(sessions, self.index)
        self.sink = StoreSink(self.index, self.cluster, pool)
        #: The backend as the loop drives it: nothing is started, stopped or spawned unless
        #: this server surely still holds the store's writer lease.
        fenced = FencedCluster(self.cluster, self._ensure_lease)
        self.scheduler = Scheduler(
            pool,
            self.index.workload,
            throughputs,
            get_policy(cfg.policy),
            fenced,
            self.clock,
            self.source,
            SchedulerConfig.live(cfg.round_seconds),
            checks=self.checks,
            sink=self.sink,
            placer=self.placer,
            gate=self.gate,
            serving=serving,
        )
        #: The scheduler plans; this loop applies its plans to the backend and the store.
        self.loop = LiveLoop(self.scheduler, fenced, self.source, self.sink)
        self.serving = serving
        self.sink.scheduler = self.scheduler
        self.sink.listeners.append(self._log_events)
        #: Tenants as last read from the store; changes reach the gate on the round's thread.
        self.tenant_view = TenantView(cfg.tenant_refresh_seconds)
        #: The store's writer lease (one writer per store; ``build_app`` sets it); None: not
        #: checked (unit tests of the service alone).
        self.lease: StoreLease | None = None
        #: Set when the lease was lost: the loop has stopped and nothing more is written.
        self.fenced: LeaseLost | None = None
        #: Called (once, from the thread that noticed) when the lease is lost; ``cpool serve``
        #: shuts the process down.
        self.on_fenced: Callable[[], None] | None = None
        #: Several servers share the store (``--standby``): when another holds the lease,
        #: serve the API and wait for it instead of refusing to start.
        self.standby = False
        #: Called when this server becomes the leader, before it recovers (reload what
        #: other servers may have changed in the store meanwhile: approvals, counters).
        self.on_lead: Callable[[], None] | None = None
        #: Called with the tenants' refresh while leading with standbys beside (approvals
        #: put on record through another server).
        self.on_refresh: Callable[[], None] | None = None
        #: True from when this server leads (lease taken, recovered) until it stops.
        self.leading = False
        self._standby_thread: threading.Thread | None = None
        #: Held by every writer of this process (scheduler round, submission writer): with
        #: SQLite, threads then never wait on the database's own lock and its back-off.
        self.write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.recovery: RecoveryReport | None = None
        self.rounds = 0

    def sandbox_public(self) -> dict | None:
        """How workers are isolated, for ``/healthz`` and ``/v1/pool`` (None: not local)."""
        return None if self.sandbox is None else self.sandbox.public()

    @property
    def sandbox_warning(self) -> str:
        return "" if self.sandbox is None else self.sandbox.warning

    @property
    def role(self) -> str:
        """``leader`` (holds the lease, schedules) or ``standby`` (serves the API only)."""
        return LEADER if self.leading and self.fenced is None else STANDBY

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        if self.lease is not None and not self.lease.held:
            if not self.standby:
                self.lease.acquire()  # LeaseHeld: another server writes to this store
            elif self.lease.try_acquire() is not None:  # another leads: wait, serving the API
                self._standby_thread = threading.Thread(
                    target=self._await_lease, name="cpool-standby", daemon=True
                )
                self._standby_thread.start()
                return
        self._lead()

    def _lead(self) -> None:
        """Holding the lease: renew it, recover from the store and the backend, schedule."""
        if self.lease is not None:
            threading.Thread(target=self._renew, name="cpool-lease", daemon=True).start()
        if self.standby:  # submissions and cancels stored by the other servers wake the loop
            engine = self.sessions.kw["bind"]
            args = (engine, self.wake, self._stop)
            threading.Thread(target=listen, args=args, name="cpool-listen", daemon=True).start()
        if self.on_lead is not None:
            self.on_lead()
        fence = getattr(self.cluster, "fence_epoch", None)
        if fence is not None and self.lease is not None and self.lease.epoch is not None:
            fence(self.lease.epoch)  # workers a deposed leader launches from now on never run
        self.refresh_tenants(force=True)
        self._apply_tenants()  # the round's thread does this from now on
        self.recovery = recover(self)
        log.info("recovered", extra={"fields": self.recovery.summary()})
        self.leading = True
        self._thread = threading.Thread(target=self._run, name="cpool-scheduler", daemon=True)
        self._thread.start()

    def _await_lease(self) -> None:
        """A standby: wait for the lease, then lead (or stop trying when the server stops)."""
        lease = self.lease
        assert lease is not None
        log.info("standby: serving the API, waiting for the writer lease",
                 extra={"fields": {"store": lease.store}})  # fmt: skip
        while (holder := lease.try_acquire()) is not None:
            try:  # what admission on this server reads: budgets, tenants, approvals
                self.refresh_tenants()
            except Exception:
                log.exception("standby: reading tenants from the store failed")
            left = holder.expires_at - lease.clock()
            if self._stop.wait(min(lease.renew_every_s, max(left, 0.05))):
                return
        log.warning("this server leads now", extra={"fields": {"epoch": self.lease.epoch}})
        try:
            self._lead()
        except LeaseLost as exc:
            self._fence(exc)
        except Exception:  # cannot take over: step aside rather than half-lead
            log.exception("taking over as leader failed; this server stops")
            with contextlib.suppress(Exception):
                self.lease.release()
            why = f"taking over store {self.lease.store} failed"
            self._fence(LeaseLost(self.lease.store, None, time.time(), why))

    def _ensure_lease(self) -> None:
        """Before acting on the cluster: the lease must surely be ours (renewed if it is
        not fresh); else ``LeaseLost`` (and this server stops)."""
        if self.lease is None or self.lease.fresh():
            return
        try:
            with self.write_lock:
                self.lease.renew()
        except LeaseLost as exc:
            self._fence(exc)
            raise
        except Exception as exc:  # cannot prove it is ours: acting now could act twice
            why = f"cannot confirm the writer lease of store {self.lease.store} before acting"
            lost = LeaseLost(self.lease.store, None, time.time(), f"{why}: {exc}"[:500])
            self._fence(lost)
            raise lost from exc

    def _renew(self) -> None:
        """Renew the writer lease every third of its time to live, whatever rounds take."""
        assert self.lease is not None
        while not self._stop.wait(self.lease.renew_every_s):
            try:
                with self.write_lock:
                    self.lease.renew()
            except LeaseLost as exc:
                self._fence(exc)
                return
            except Exception:  # the store is unreachable for a moment: the next try decides
                log.exception("renewing the writer lease failed")

    def _fence(self, exc: LeaseLost) -> None:
        """The lease is lost: stop scheduling, write nothing more, tell ``on_fenced``."""
        if self.fenced is not None:
            return
        self.fenced = exc
        log.critical(str(exc))
        self._stop.set()
        self.clock.wake()
        if self.on_fenced is not None:
            self.on_fenced()

    def stop(self) -> None:
        self._stop.set()
        self.clock.wake()
        if self._standby_thread is not None:
            self._standby_thread.join(timeout=60)
        if self.lease is not None and not self.leading:  # a standby: no jobs, no writes
            return
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=60)
        if self.serving is not None:
            self.serving.stop()
        ours = True
        if self.lease is not None and self.fenced is None:
            try:  # before stopping any job: are they still ours?
                with self.write_lock:
                    self.lease.renew()
            except LeaseLost as exc:
                self._fence(exc)
            except Exception:  # the store is unreachable: leave the jobs to be adopted
                log.exception("could not confirm the writer lease at shutdown")
                ours = False
        if self.fenced is not None or not ours:  # another server may own them now
            self.cluster.shutdown(stop_jobs=False)
            return
        self.cluster.shutdown(stop_jobs=self.config.stop_jobs_on_exit)
        if self.config.stop_jobs_on_exit:
            now = self.clock.now()
            for k in list(self.scheduler.active.job[self.scheduler.active.running >= 0]):
                self.sink.buffer.append(Event(int(k), "preempted", now, "server stopped"))
        with self.write_lock, self.sessions() as s:
            try:
                self.fence_in(s)
            except LeaseLost:
                return
            self.sink.flush(s)
        if self.lease is not None and self.fenced is None:
            self.lease.release()

    def fence_in(self, s: Session) -> None:
        """First statement of a transaction that writes: renew the lease in it, or stop."""
        if self.lease is None:
            return
        try:
            self.lease.fence(s)
        except LeaseLost as exc:
            s.rollback()
            self._fence(exc)
            raise

    def wake(self) -> None:
        self.clock.wake()

    def _run(self) -> None:
        cfg = self.config
        while not self._stop.is_set():
            t0 = time.time()
            try:
                self.round()
            except LeaseLost:
                return
            except Exception:  # a bad round must not stop the pool; it is logged
                log.exception("scheduler round failed")
            self.clock.sleep_until(t0 + cfg.round_seconds)
            gap = cfg.min_gap_seconds - (time.time() - t0)
            if gap > 0 and not self._stop.is_set():
                time.sleep(gap)

    # ---- one round ---------------------------------------------------------------------
    def round(self) -> None:
        t0 = time.perf_counter()
        if self.lease is not None:  # never act on the cluster without the lease
            try:
                with self.write_lock:
                    self.lease.renew()
            except LeaseLost as exc:
                self._fence(exc)
                raise
        self.refresh_tenants()
        self._apply_tenants()
        self._cancellations()
        self._time_limits()
        self.loop.round()
        with self.write_lock, self.sessions() as s:
            self.fence_in(s)
            self._write_audit(s)
            events = self.sink.flush(s)
            s.commit()  # audit records of a round without events
        self.rounds += 1
        self.metrics.observe_round(self, time.perf_counter() - t0, events)

    def _write_audit(self, s: Session) -> None:
        """Decisions recorded by admission checks (residency verdicts) into the audit log, with
        stored job ids and tenants; the exports they counted into the person counters; data
        copied in at a start onto its placement interval (through the sink)."""
        if not self.audit_records:
            return
        index = self.index
        jobs = {int(r["job"]) for r in self.audit_records if str(r.get("job", "")).isdigit()}
        names = {r.id: r.name for r in store.tenants(s)}
        tenant_of = {k: names.get(index.tenant_id[k], "") for k in jobs if k < len(index.ids)}
        moved = residency_store.write_records(s, self.audit_records, index.ids, tenant_of)
        self.sink.transfers.update(moved)

    def pending_reason(self, job_id: int) -> Status | None:
        """Why a stored job waits (the scheduler's status after its last round), or None."""
        j = self.index.of_id.get(job_id)
        if j is None:
            return None
        with self.write_lock:  # the round mutates what the answer reads
            return self.scheduler.pending_reason(j)

    @property
    def over_budget(self) -> frozenset[str]:
        return self.tenant_view.over_budget

    def refresh_tenants(self, force: bool = False) -> None:
        """Read tenants, quotas and budgets from the store if due (any thread); a change
        reaches the quota gate at the start of the next round (``_apply_tenants``)."""
        self.tenant_view.refresh(self._read_tenants, time.time(), force)

    def _read_tenants(self) -> Tenants:
        with self.sessions() as s:
            rows = store.tenants(s)
            spent = ledger.spent_by_tenant(s, self.pool)
        if self.standby and self.on_refresh is not None:  # approvals made on other servers
            self.on_refresh()
        over = frozenset(ledger.over_budget(spent, rows))
        return {r.name: store.to_tenant(r) for r in rows}, over

    def _apply_tenants(self) -> None:
        """On the round's thread only (or before it runs): quotas, weights or budgets
        changed, so jobs they held back may start now."""
        new = self.tenant_view.take()
        if new is not None:
            self.gate.update(*new)
            self.scheduler.wake()

    def _cancellations(self) -> None:
        with self.sessions() as s:
            ids = list(
                s.scalars(
                    select(JobRow.id).where(
                        JobRow.cancel_requested.is_(True), JobRow.status.not_in(FINAL)
                    )
                )
            )
            if not ids:
                return
            known = [self.index.of_id[i] for i in ids if i in self.index.of_id]
            unknown = [i for i in ids if i not in self.index.of_id]
            if unknown:  # never reached the scheduler: cancel in the store directly
                self._cancel_unknown(s, unknown)
        if known:
            self.loop.cancel(np.asarray(known, dtype=np.int64))

    def _time_limits(self) -> None:
        """Stop running jobs that have held their accelerators for their time limit (all
        attempts together): they fail with reason "time limit", so a reservation bounds use."""
        now = time.time()
        held = func.sum(func.coalesce(AllocationRow.ended_at, now) - AllocationRow.started_at)
        with self.sessions() as s:
            ids = s.scalars(
                select(JobRow.id)
                .join(AllocationRow, AllocationRow.job_id == JobRow.id)
                .where(JobRow.status == "running", JobRow.time_limit_s.is_not(None))
                .group_by(JobRow.id, JobRow.time_limit_s)
                .having(held >= JobRow.time_limit_s)
            ).all()
        ks = [self.index.of_id[i] for i in ids if i in self.index.of_id]
        if ks:
            self.loop.cancel(np.asarray(ks, dtype=np.int64), reason=TIME_LIMIT, kind="failed")

    def _cancel_unknown(self, s: Session, unknown: list[int]) -> None:
        now = time.time()
        with self.write_lock:
            done = s.scalars(
                update(JobRow)
                .where(JobRow.id.in_(unknown), JobRow.status == "queued")
                .values(status="cancelled", finished_at=now, reason="cancelled")
                .returning(JobRow.id)
            ).all()
            if done:
                s.execute(
                    insert(JobEventRow),
                    [{"job_id": i, "at": now, "kind": "cancelled", "detail": ""} for i in done],
                )
            s.commit()

    def _log_events(self, events: list[Event]) -> None:
        if not log.isEnabledFor(logging.INFO) or len(events) > 200:
            return
        for e in events:
            log.info(
                "job." + e.kind,
                extra={"fields": {"job": self.index.ids[e.job], "detail": e.detail}},
            )
