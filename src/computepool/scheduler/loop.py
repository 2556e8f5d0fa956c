"""The Scheduler: one round loop for the live pool and the simulator.

Each round: observe the cluster (completions, failures, progress) -> account usage -> admit
arrivals (feasibility + admission checks) -> policy allocation -> round mechanism -> plan ->
``Cluster.apply``. Time comes from an injected ``Clock``; there is no "simulate" flag.

This module owns the order of those steps and the loop's timing (``step``, ``next_time``,
``run``); the steps themselves live beside it: ``admission_masks`` (which flavors a job may
use, and why not), ``accounting`` (usage, the mechanism's time counters, ``RoundSeries``),
``lifecycle`` (joining and leaving the active set, events) and ``round`` (the pieces of one
round's decision and its application).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from computepool.admission.feasibility import ClassFeasibility
from computepool.model.pool import Pool
from computepool.model.status import Status
from computepool.model.throughput import Throughputs
from computepool.model.workload import Workload
from computepool.policies.base import Policy, PolicyInput
from computepool.scheduler import lifecycle
from computepool.scheduler.accounting import (
    RoundSeries,
    TimeCounters,
    charge_usage,
    record_interval,
)
from computepool.scheduler.admission_masks import Admission, ProfileCheck
from computepool.scheduler.interfaces import (
    Clock,
    Cluster,
    JobSink,
    JobSource,
    Placer,
    RoundGate,
    RoundPlan,
)
from computepool.scheduler.lifecycle import CANCELLED, COMPLETED, FAILED, REJECTED, emit
from computepool.scheduler.policy_view import ServingHook
from computepool.scheduler.round import RoundMaker
from computepool.scheduler.state import ActiveSet, JobHistory

__all__ = [
    "CANCELLED",
    "COMPLETED",
    "FAILED",
    "REJECTED",
    "ProfileCheck",
    "RoundSeries",
    "Scheduler",
    "SchedulerConfig",
    "ServingHook",
]


#: Gavel's minimum time between counter resets in rounds (1,920 s / 360 s).
GAVEL_RESET_ROUNDS = 1920.0 / 360.0


@dataclass(frozen=True)
class SchedulerConfig:
    round_seconds: float = 360.0
    #: Received-time counters (the mechanism's memory) are reset at most this often, and only
    #: when the job set changed (Gavel's ``minimum_time_between_allocation_resets``).
    min_reset_seconds: float = 1920.0
    #: Time-shared (LP) policies: recompute the allocation whenever the job set changed. False
    #: (Gavel's simulator) recomputes it only together with a counter reset; jobs that arrive in
    #: between hold no share until then and run only on room the others leave.
    recompute_on_change: bool = False
    #: Time-shared policies: a row owed more than this many rounds of time on a flavor (its
    #: deficit) goes ahead of rows ranked by Gavel's priority (``mechanism.assign_time_shares``),
    #: so large gangs with small shares are not starved. ``inf``: Gavel's order exactly.
    starvation_rounds: float = 2.0

    @classmethod
    def live(cls, round_seconds: float) -> SchedulerConfig:
        """A live pool's defaults, tied to its round: the allocation is recomputed as soon as
        the job set changes (a new job holds its share from the next round, not from the next
        counter reset), and counters reset after as many rounds as Gavel's 1,920 s are of its
        360 s rounds. With the simulator's defaults and 1 s live rounds a new job under a
        max-min policy waited up to 32 minutes for its share."""
        return cls(
            round_seconds=round_seconds,
            min_reset_seconds=round_seconds * GAVEL_RESET_ROUNDS,
            recompute_on_change=True,
        )


class Scheduler:
    """The round loop over one pool and workload: when rounds happen and in what order their
    steps run; admission, accounting, lifecycle and the round itself are delegated."""

    def __init__(
        self,
        pool: Pool,
        workload: Workload,
        throughputs: Throughputs,
        policy: Policy,
        cluster: Cluster,
        clock: Clock,
        source: JobSource,
        config: SchedulerConfig | None = None,
        checks: Sequence[ProfileCheck] = (),
        sink: JobSink | None = None,
        feasibility: ClassFeasibility | None = None,
        placer: Placer | None = None,
        gate: RoundGate | None = None,
        pair_rates: np.ndarray | None = None,
        serving: ServingHook | None = None,
    ) -> None:
        self.pool, self.workload, self.throughputs = pool, workload, throughputs
        self.policy, self.cluster, self.clock, self.source = policy, cluster, clock, source
        self.config = config or SchedulerConfig()
        self.checks, self.sink = tuple(checks), sink
        self.placer, self.gate = placer, gate
        self.serving = serving
        F = len(pool.flavors)
        self.active = ActiveSet(F)
        self.history = JobHistory(len(workload))
        self.series = RoundSeries()
        self.rejections: dict[int, Status] = {}
        self._admission = Admission(pool, workload, throughputs, self.checks, feasibility)
        self._t_prev = clock.now()
        #: The mechanism's memory: time per flavor and per pair since the last reset.
        self._counters = TimeCounters.empty(F)
        self._round = RoundMaker(
            pool=pool,
            workload=workload,
            throughputs=throughputs,
            policy=policy,
            round_seconds=self.config.round_seconds,
            min_reset_seconds=self.config.min_reset_seconds,
            recompute_on_change=self.config.recompute_on_change,
            starvation_deficit_s=self.config.starvation_rounds * self.config.round_seconds,
            cluster=cluster,
            admission=self._admission,
            active=self.active,
            history=self.history,
            series=self.series,
            counters=self._counters,
            checks=self.checks,
            sink=sink,
            placer=placer,
            gate=gate,
            serving=serving,
            pair_rates=pair_rates,
        )
        self._first = True
        self._next_round = -math.inf
        self._deferred = False
        #: Set by ``wake`` (and withdrawals, capacity changes): the next round re-decides.
        self._woken = False

    # ---- admission (scheduler/admission_masks.py) -------------------------------------
    @property
    def _masks(self) -> np.ndarray:
        return self._admission.masks

    @property
    def _stale(self) -> np.ndarray:
        return self._admission.stale

    def invalidate_profile_masks(self) -> None:
        """Forget the per-profile masks (a check's answers changed); recomputed when needed."""
        self._admission.invalidate()

    def _sync_checks(self, now: float) -> bool:
        """Let time-dependent checks move to ``now``; True when masks may have changed."""
        return self._admission.sync(now, self.active.job)

    def _profile_masks(self, need: np.ndarray | None = None) -> np.ndarray:
        """(M, F) flavor masks per data profile; the rows of ``need`` (default: the profiles
        of active jobs) are up to date, others may be stale (no job uses them now)."""
        if need is None:
            need = self.workload.data_profile[self.active.job]
        return self._admission.profile_masks(need)

    def admit(self, jobs: np.ndarray) -> np.ndarray:
        """Split arrivals into admitted (returned) and rejected (recorded with a reason)."""
        if len(jobs) == 0:
            return jobs
        self._admission.refresh_classes()
        ok = self._admission.legal(jobs)
        for j in jobs[~ok]:
            self._reject(int(j), self._t_prev)
        return jobs[ok]

    def _reject(self, job: int, now: float) -> None:
        st = self._admission.why_not(job)
        lifecycle.reject(job, st, now, self.rejections, self.history, self.sink, self.checks)

    def _reject_stranded(self, now: float) -> bool:
        """Reject active jobs that no longer have any legal flavor (e.g. an approval expired)."""
        a, h = self.active, self.history
        if len(a) == 0:
            return False
        ok = self._admission.legal(a.job)
        if ok.all():
            return False
        jobs = a.job[~ok]
        running = jobs[a.running[~ok] >= 0]
        if len(running):
            if self.placer is not None:
                self.placer.release(running)
            self.cluster.apply(
                RoundPlan(now=now, round_seconds=self.config.round_seconds, stop=running)
            )
        for j in jobs:
            self._reject(int(j), now)
        h.row_of[jobs] = -1
        a.keep(ok)
        lifecycle.reindex(a, h)
        return True

    # ---- accounting and lifecycle (scheduler/accounting.py, scheduler/lifecycle.py) ------
    def _account(self, now: float) -> bool:
        """Observe the cluster, charge usage since the last round, settle ended and failed
        jobs; True when the job set changed."""
        obs = self.cluster.observe(now)
        self._woken = self._woken or obs.capacity_changed
        ended, ended_at = lifecycle.ended_jobs(obs)
        t0 = self._t_prev
        usage = charge_usage(
            self.active,
            self.history,
            self._counters,
            self.pool,
            self._admission.scale_factor,
            self.workload.job_class,
            t0,
            now,
            ended,
            ended_at,
        )
        held = self.serving.held if self.serving is not None else None
        record_interval(self.series, usage, self.active, len(self.pool.flavors), t0, now, held)
        return lifecycle.settle(
            obs,
            ended,
            ended_at,
            self.active,
            self.history,
            self._counters.pairs,
            self.placer,
            self.sink,
            t0,
        )

    # ---- live-pool operations (between rounds) ---------------------------------------
    def adopt(self, jobs: np.ndarray, flavors: np.ndarray, started_at: np.ndarray) -> np.ndarray:
        """Take over jobs already running on the cluster (after a control-plane restart).

        They join the active set as running on ``flavors`` without a start being sent to the
        cluster. Returns the mask of jobs adopted; the others were rejected at admission
        (their reason is in ``rejections``) and the caller must stop them.
        """
        jobs = np.asarray(jobs, dtype=np.int64)
        if len(jobs) == 0:
            return np.zeros(0, dtype=bool)
        self.history.ensure(int(jobs.max()) + 1)
        admitted = self.admit(jobs)
        ok = np.isin(jobs, admitted)
        lifecycle.join(self.active, self.history, admitted, self._half_round)
        lifecycle.mark_adopted(
            self.active,
            self.history,
            admitted,
            np.asarray(flavors, dtype=np.int64)[ok],
            np.asarray(started_at, dtype=np.float64)[ok],
        )
        for j in admitted:
            emit(self.sink, int(j), "adopted", self._t_prev)
        return ok

    def cancel(
        self, jobs: np.ndarray, reason: str = "cancelled", kind: str = "cancelled"
    ) -> np.ndarray:
        """Withdraw jobs; running ones are killed through the cluster. Returns those withdrawn.

        Jobs already finished, failed, rejected or cancelled are left alone. ``kind``: the
        event they leave with (``failed`` when the pool stops them, e.g. at a time limit).
        """
        jobs = np.asarray(jobs, dtype=np.int64)
        if len(jobs) == 0:
            return jobs
        jobs, kill = lifecycle.withdrawable(self.active, self.history, jobs)
        now = self.clock.now()
        if len(kill):
            if self.placer is not None:
                self.placer.release(kill)
            self.cluster.apply(
                RoundPlan(now=now, round_seconds=self.config.round_seconds, kill=kill)
            )
        lifecycle.withdraw(
            self.active, self.history, self._counters.pairs, jobs, now, self.sink, reason, kind
        )
        self._woken = self._woken or len(jobs) > 0  # their capacity is free for others
        return jobs

    def steps_done(self, job: int) -> float:
        """Work a job still in the pool has done so far (0 when it has not run yet)."""
        row = int(self.history.row_of[job]) if job < len(self.history.row_of) else -1
        return float(self.active.steps_done[row]) if 0 <= row < len(self.active) else 0.0

    def pending_reason(self, job: int) -> Status | None:
        """Why ``job`` waits after the last round: a status naming the quota, placement,
        check or capacity that held it back (None: it is not waiting)."""
        return self._round.explain(job)

    def wake(self) -> None:
        """Something the loop does not watch changed (tenants' quotas or budgets, the pool's
        capacity): the next round re-decides as if the job set had changed, so a waiting job
        starts within one round of the change rather than at the next unrelated event."""
        self._woken = True

    # ---- the policy's round (scheduler/round.py) ---------------------------------------
    def pair_rates(self) -> np.ndarray:
        """(C, C, F) pair rates for the workload's classes (computed once, grown with them)."""
        return self._round.pair_rates()

    def policy_input(self, now: float) -> PolicyInput:
        """What the policy would be given at ``now`` (the active rows)."""
        return self._round.policy_input(now)

    def _decide(self, now: float, changed: bool) -> None:
        self._round.decide(now, changed, first=self._first, at=self._t_prev)

    @property
    def _half_round(self) -> float:
        return self.config.round_seconds / 2.0

    # ---- the loop --------------------------------------------------------------------
    def step(self) -> bool:
        """Run one round at the clock's current time. Returns False when all work is done."""
        now = self.clock.now()
        changed = self._account(now) or self._woken
        self._woken = False
        self._t_prev = now
        if self._sync_checks(now):
            self._reject_stranded(now)
            changed = True
        arrived = np.asarray(self.source.arrivals(now), dtype=np.int64)
        if len(arrived):
            self.history.ensure(int(arrived.max()) + 1)
            admitted = self.admit(arrived)
            if len(admitted):
                # Gavel starts every job's received time at half a round on each flavor.
                lifecycle.join(self.active, self.history, admitted, self._half_round)
                for j in admitted:
                    emit(self.sink, int(j), "admitted", self._t_prev)
                changed = True
        serving = self.serving is not None and self.serving.active(now)
        if len(self.active) == 0 and self.source.exhausted() and not serving:
            return False
        round_due = now >= self._next_round - 1e-9
        if serving and not self.policy.event_driven and not round_due:
            # between training rounds only the services act; changes wait for the round
            self._deferred = self._deferred or changed
            changed = False
        if (
            changed
            or self._first
            or (round_due and not self.policy.event_driven)
            or now >= self._round.policy_next
        ):
            self._decide(now, changed or self._deferred)
            self._deferred = False
            self._next_round = now + self.config.round_seconds
        elif serving:
            self._round.serve(now, at=self._t_prev)
            if len(self.active) == 0 and self.source.exhausted() and not self.serving.active(now):
                return False  # the services just ended and nothing else is left
        self._first = False
        self.series.rounds += 1
        return True

    def next_time(self, now: float) -> float:
        r = self.config.round_seconds
        t_next = now + r
        if self.serving is not None and self.serving.active(now):
            return now + float(getattr(self.serving, "interval_s", r))
        nxt_arrival = self.source.next_arrival()
        if len(self.active) == 0:
            t_next = max(t_next, nxt_arrival) if math.isfinite(nxt_arrival) else t_next
        elif self.policy.event_driven:
            t_evt = min(self.cluster.next_event_time(), nxt_arrival, self._round.policy_next)
            if math.isfinite(t_evt) and t_evt > t_next:
                t_next = now + math.ceil((t_evt - now) / r - 1e-9) * r
        if len(self.active):
            # a check whose answers change by themselves (an approval expires) gets a round then
            for check in self.checks:
                nxt = getattr(check, "next_change", None)
                if nxt is not None and now < (t_change := nxt(now)) < t_next:
                    t_next = t_change
        return t_next

    def run(
        self,
        until: float = math.inf,
        on_round: Callable[[Scheduler], None] | None = None,
        stop: Callable[[Scheduler], bool] | None = None,
    ) -> None:
        """Step until all work is done, ``until`` is reached or ``stop(self)`` says so."""
        while True:
            if not self.step():
                break
            if on_round is not None:
                on_round(self)
            if stop is not None and stop(self):
                break
            t = self.next_time(self.clock.now())
            if t > until:
                break
            self.clock.sleep_until(t)
