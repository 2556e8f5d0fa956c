"""The Scheduler: one round loop's decisions for the live pool and the simulator.

The scheduler plans, the loops apply (Nomad's shape). ``Scheduler.plan(observation, arrivals)``
takes what the cluster observed (completions, failures, progress, starts that did not happen)
-> accounts usage -> admits arrivals (feasibility + admission checks) -> policy allocation ->
round mechanism -> a ``StepOutput``: the ``RoundPlan`` list and the lifecycle events of the step. It
changes only its ``SchedulerState`` (``scheduler/contract.py``); the simulator's loop
(``sim/loop.py``) and the live pool's (``server/live_loop.py``) apply the plans to their
cluster, report the events, and feed what the cluster could not do into the next observation.
Time comes from an injected ``Clock``; there is no "simulate" flag. ``step``/``run`` are the
simplest such loop, over the ``cluster`` and ``source`` the Scheduler was built with.

This module owns the order of a step and the loop's timing (``plan``, ``next_time``); the
steps themselves live beside it: ``admission_masks`` (which flavors a job may use, and why
not), ``accounting`` (usage, the mechanism's time counters, ``RoundSeries``), ``lifecycle``
(joining and leaving the active set, events) and ``round`` (the pieces of one round's
decision and its plan).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

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
    charge_usage,
    record_interval,
)
from computepool.scheduler.admission_masks import Admission, ProfileCheck
from computepool.scheduler.contract import (
    RoundContext,
    SchedulerConfig,
    SchedulerState,
    StepOutput,
    deliver,
    with_start_failures,
)
from computepool.scheduler.interfaces import (
    Clock,
    Cluster,
    JobSink,
    JobSource,
    Observation,
    Placer,
    RoundGate,
    RoundPlan,
)
from computepool.scheduler.lifecycle import CANCELLED, COMPLETED, FAILED, REJECTED, emit
from computepool.scheduler.policy_view import ServingHook
from computepool.scheduler.round import RoundMaker

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


class Scheduler:
    """The round loop's brain over one pool and workload: ``plan`` takes an observation and
    the arrivals and returns the step's plans and events; when rounds happen and in what order
    their steps run is decided here, admission, accounting, lifecycle and the round itself are
    delegated. ``step``/``run`` drive ``cluster`` and ``source`` themselves (the simplest loop:
    tests, scripts); the simulator (``sim/loop.py``) and the live pool run their own."""

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
        cfg = config or SchedulerConfig()
        checks = tuple(checks)
        admission = Admission(pool, workload, throughputs, checks, feasibility)
        ctx = RoundContext(
            pool, workload, throughputs, policy, cfg, admission, checks, placer, gate, serving
        )
        state = SchedulerState.empty(len(pool.flavors), len(workload), clock.now())
        state.pair_rates = pair_rates
        self.ctx, self.state = ctx, state
        #: The simplest loop's seams (``step``, ``run``, ``cancel``, ``adopt``).
        self.cluster, self.clock, self.source, self.sink = cluster, clock, source, sink
        self._round = RoundMaker(ctx, state)
        #: Starts the cluster reported as not done, for the next step (``step``'s loop).
        self._start_failed: dict[int, str] = {}

    # ---- the context and state, by name -------------------------------------------------
    pool = property(lambda self: self.ctx.pool)
    workload = property(lambda self: self.ctx.workload)
    throughputs = property(lambda self: self.ctx.throughputs)
    policy = property(lambda self: self.ctx.policy)
    config = property(lambda self: self.ctx.config)
    checks = property(lambda self: self.ctx.checks)
    placer = property(lambda self: self.ctx.placer)
    gate = property(lambda self: self.ctx.gate)
    serving = property(lambda self: self.ctx.serving)
    _admission = property(lambda self: self.ctx.admission)
    active = property(lambda self: self.state.active)
    history = property(lambda self: self.state.history)
    series = property(lambda self: self.state.series)
    rejections = property(lambda self: self.state.rejections)
    _counters = property(lambda self: self.state.counters)

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
            self._reject(int(j), self.state.t_prev)
        return jobs[ok]

    def _reject(self, job: int, now: float) -> None:
        st = self._admission.why_not(job)
        lifecycle.reject(
            job, st, now, self.rejections, self.history, self.state.outbox, self.checks
        )

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
            self.state.outbox.plans.append(
                RoundPlan(now=now, round_seconds=self.config.round_seconds, stop=running)
            )
        for j in jobs:
            self._reject(int(j), now)
        h.row_of[jobs] = -1
        a.keep(ok)
        lifecycle.reindex(a, h)
        return True

    # ---- accounting and lifecycle (scheduler/accounting.py, scheduler/lifecycle.py) ------
    def _account(self, obs: Observation) -> bool:
        """Take in what the cluster observed: starts that did not happen first (their rows
        never ran), then usage since the last step, ended and failed jobs; True when the job
        set changed."""
        st, now = self.state, obs.now
        st.woken = st.woken or obs.capacity_changed
        not_started = lifecycle.unstart(
            obs.start_failed,
            st.active,
            st.history,
            st.counters.pairs,
            self.placer,
            st.start_failures,
            st.outbox,
            st.t_prev,
        )
        st.backoff = {j for j in obs.start_failed if j in st.start_failures}
        ended, ended_at = lifecycle.ended_jobs(obs)
        t0 = st.t_prev
        usage = charge_usage(
            st.active,
            st.history,
            st.counters,
            self.pool,
            self._admission.scale_factor,
            self.workload.job_class,
            t0,
            now,
            ended,
            ended_at,
        )
        held = self.serving.held if self.serving is not None else None
        record_interval(st.series, usage, st.active, len(self.pool.flavors), t0, now, held)
        settled = lifecycle.settle(
            obs,
            ended,
            ended_at,
            st.active,
            st.history,
            st.counters.pairs,
            self.placer,
            st.outbox,
            t0,
        )
        return settled or not_started

    # ---- live-pool operations (between rounds) ---------------------------------------
    def take_over(
        self, jobs: np.ndarray, flavors: np.ndarray, started_at: np.ndarray
    ) -> np.ndarray:
        """Take over jobs already running on the cluster (after a control-plane restart).

        They join the active set as running on ``flavors`` without a start in any plan.
        Returns the mask of jobs adopted; the others were rejected at admission (their reason
        is in ``rejections``) and the caller must stop them. Events wait in the outbox.
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
            emit(self.state.outbox, int(j), "adopted", self.state.t_prev)
        return ok

    def withdraw(
        self, jobs: np.ndarray, now: float, reason: str = "cancelled", kind: str = "cancelled"
    ) -> np.ndarray:
        """Withdraw jobs at ``now``: running ones get a kill in the outbox's plan. Returns those
        withdrawn; jobs already finished, failed, rejected or cancelled are left alone.
        ``kind``: the event they leave with (``failed`` when the pool stops them)."""
        jobs = np.asarray(jobs, dtype=np.int64)
        if len(jobs) == 0:
            return jobs
        jobs, kill = lifecycle.withdrawable(self.active, self.history, jobs)
        if len(kill):
            if self.placer is not None:
                self.placer.release(kill)
            self.state.outbox.plans.append(
                RoundPlan(now=now, round_seconds=self.config.round_seconds, kill=kill)
            )
        lifecycle.withdraw(
            self.active,
            self.history,
            self._counters.pairs,
            jobs,
            now,
            self.state.outbox,
            reason,
            kind,
        )
        for j in jobs.tolist():
            self.state.start_failures.pop(int(j), None)
        self.state.woken = self.state.woken or len(jobs) > 0  # their capacity is free for others
        return jobs

    def take(self, now: float | None = None, more: bool = True) -> StepOutput:
        """What the scheduler produced since the last ``take`` (plans, events) for a loop."""
        plans, events = self.state.outbox.take()
        t = self.state.t_prev if now is None else now
        return StepOutput(t, tuple(plans), tuple(events), more)

    def _drain(self) -> None:
        """The simplest loop: apply what is in the outbox to ``cluster``, tell ``sink``."""
        deliver(self.take(), self.cluster, self.sink, self._start_failed)

    def adopt(self, jobs: np.ndarray, flavors: np.ndarray, started_at: np.ndarray) -> np.ndarray:
        """``take_over``, its events told to ``sink`` at once."""
        ok = self.take_over(jobs, flavors, started_at)
        self._drain()
        return ok

    def cancel(
        self, jobs: np.ndarray, reason: str = "cancelled", kind: str = "cancelled"
    ) -> np.ndarray:
        """``withdraw`` now (the clock's time), its kills applied to ``cluster`` at once."""
        out = self.withdraw(jobs, self.clock.now(), reason, kind)
        self._drain()
        return out

    def steps_done(self, job: int) -> float:
        """Work a job still in the pool has done so far (0 when it has not run yet)."""
        row = int(self.history.row_of[job]) if job < len(self.history.row_of) else -1
        return float(self.active.steps_done[row]) if 0 <= row < len(self.active) else 0.0

    def pending_reason(self, job: int) -> Status | None:
        """Why ``job`` waits after the last round: a status naming the quota, placement,
        check, failed start or capacity that held it back (None: it is not waiting)."""
        return self._round.explain(job)

    def wake(self) -> None:
        """Something the loop does not watch changed (tenants' quotas or budgets, the pool's
        capacity): the next round re-decides as if the job set had changed, so a waiting job
        starts within one round of the change rather than at the next unrelated event."""
        self.state.woken = True

    # ---- the policy's round (scheduler/round.py) ---------------------------------------
    def pair_rates(self) -> np.ndarray:
        """(C, C, F) pair rates for the workload's classes (computed once, grown with them)."""
        return self._round.pair_rates()

    def policy_input(self, now: float) -> PolicyInput:
        """What the policy would be given at ``now`` (the active rows)."""
        return self._round.policy_input(now)

    def _decide(self, now: float, changed: bool) -> None:
        """A policy round at ``now`` outside ``plan`` (tests), applied at once."""
        self._round.decide(now, changed, first=self.state.first, at=self.state.t_prev)
        self._drain()

    @property
    def _half_round(self) -> float:
        return self.config.round_seconds / 2.0

    # ---- the step --------------------------------------------------------------------
    def plan(self, obs: Observation, arrivals: np.ndarray, exhausted: bool) -> StepOutput:
        """One step at ``obs.now``: take in the observation, admit ``arrivals`` (``exhausted``:
        no more will come), decide the round if one is due; return the plans and events for
        the loop to apply. Changes only the scheduler's state (and the placer's slots)."""
        st, now = self.state, obs.now
        changed = self._account(obs) or st.woken
        st.woken = False
        st.t_prev = now
        if self._sync_checks(now):
            self._reject_stranded(now)
            changed = True
        arrived = np.asarray(arrivals, dtype=np.int64)
        if len(arrived):
            self.history.ensure(int(arrived.max()) + 1)
            admitted = self.admit(arrived)
            if len(admitted):
                # Gavel starts every job's received time at half a round on each flavor.
                lifecycle.join(self.active, self.history, admitted, self._half_round)
                for j in admitted:
                    emit(st.outbox, int(j), "admitted", st.t_prev)
                changed = True
        serving = self.serving is not None and self.serving.active(now)
        if len(self.active) == 0 and exhausted and not serving:
            return self.take(now, more=False)
        round_due = now >= st.next_round - 1e-9
        if serving and not self.policy.event_driven and not round_due:
            # between training rounds only the services act; changes wait for the round
            st.deferred = st.deferred or changed
            changed = False
        if (
            changed
            or st.first
            or (round_due and not self.policy.event_driven)
            or now >= st.policy_next
        ):
            self._round.decide(now, changed or st.deferred, first=st.first, at=st.t_prev)
            st.deferred = False
            st.next_round = now + self.config.round_seconds
        elif serving:
            self._round.serve(now, at=st.t_prev)
            if len(self.active) == 0 and exhausted and not self.serving.active(now):
                return self.take(now, more=False)  # the services just ended, nothing is left
        st.first = False
        if st.backoff:  # they sat this round out: the next round decides for them again
            st.woken, st.backoff = True, set()
        self.series.rounds += 1
        return self.take(now)

    def next_time(
        self, now: float, next_event: float | None = None, next_arrival: float | None = None
    ) -> float:
        """When the next step should run, given the cluster's next known event and the
        source's next arrival (default: asked of ``cluster`` and ``source``)."""
        r = self.config.round_seconds
        t_next = now + r
        if self.serving is not None and self.serving.active(now):
            return now + float(getattr(self.serving, "interval_s", r))
        nxt_arrival = self.source.next_arrival() if next_arrival is None else next_arrival
        if len(self.active) == 0:
            t_next = max(t_next, nxt_arrival) if math.isfinite(nxt_arrival) else t_next
        elif self.policy.event_driven:
            evt = self.cluster.next_event_time() if next_event is None else next_event
            t_evt = min(evt, nxt_arrival, self.state.policy_next)
            if math.isfinite(t_evt) and t_evt > t_next:
                t_next = now + math.ceil((t_evt - now) / r - 1e-9) * r
        if len(self.active):
            # a check whose answers change by themselves (an approval expires) gets a round then
            for check in self.checks:
                nxt = getattr(check, "next_change", None)
                if nxt is not None and now < (t_change := nxt(now)) < t_next:
                    t_next = t_change
        return t_next

    # ---- the simplest loop (tests, scripts) ----------------------------------------------
    def step(self) -> bool:
        """Observe ``cluster``, plan, apply, tell ``sink``: one step at the clock's time.
        Returns False when all work is done."""
        now = self.clock.now()
        obs = with_start_failures(self.cluster.observe(now), self._start_failed)
        self._start_failed = {}
        arrivals = self.source.arrivals(now)
        out = self.plan(obs, arrivals, self.source.exhausted())
        deliver(out, self.cluster, self.sink, self._start_failed)
        return out.more

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
