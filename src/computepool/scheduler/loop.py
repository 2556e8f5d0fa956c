"""The Scheduler: one round loop for the live pool and the simulator.

Each round: observe the cluster (completions, failures, progress) -> account usage -> admit
arrivals (feasibility + admission checks) -> policy allocation -> round mechanism -> plan ->
``Cluster.apply``. Time comes from an injected ``Clock``; there is no "simulate" flag.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from computepool.admission.feasibility import ClassFeasibility, class_feasibility
from computepool.model.job import Dataset
from computepool.model.pool import Pool
from computepool.model.status import Status
from computepool.model.throughput import Throughputs
from computepool.model.workload import Workload
from computepool.policies.base import Policy, PolicyInput, restrict_flavors, subset_input
from computepool.scheduler.interfaces import (
    Clock,
    Cluster,
    JobSink,
    JobSource,
    Placement,
    Placer,
    RoundGate,
    RoundPlan,
)
from computepool.scheduler.mechanism import assign_ordered, assign_time_shares, speed_order
from computepool.scheduler.state import ActiveSet, JobHistory

COMPLETED, REJECTED, CANCELLED, FAILED = 1, 2, 3, 4


class ServingHook(Protocol):
    """Long-running services that hold accelerators beside the jobs (``serving.controller``).

    ``reserve`` is called every round before the policy: it returns the accelerators per flavor
    the services hold from now on (``capacity``) and the rows to preempt for them (``evict``);
    the policy then allocates what is left. ``held`` is what they held since the last round.
    """

    def reserve(self, inp: PolicyInput) -> object: ...

    def held(self) -> np.ndarray: ...

    def active(self, now: float) -> bool: ...


class ProfileCheck(Protocol):
    """An admission check on a job's datasets (e.g. data residency): which flavors are legal.

    A check whose answer changes over time (approvals that expire, counters per calendar
    year) may also have any of these methods; the Scheduler calls those it finds:

    - ``sync(now) -> bool``: called first in every round; True means masks computed before
      may no longer hold (the Scheduler recomputes them and rejects active jobs left with no
      legal flavor);
    - ``next_change(now) -> float``: when the answers change next by themselves (a round is
      held then);
    - ``confirm_starts(workload, jobs, flavors, now) -> (ok, delay_s, cost_usd)``: the last
      word on each start of a round, in order; refused starts stay queued; ``delay_s`` goes
      into ``RoundPlan.start_delay`` (e.g. data transfer) and ``cost_usd`` onto the job's cost;
    - ``on_reject(job, status, now)``: told about each rejection (audit);
    - ``policy_extras(pool, workload) -> dict``: merged into ``PolicyInput.extras``;
    - ``flavor_masks(profiles, pool) -> (P, F) bool``: many profiles' masks at once (the same
      answers as ``flavor_mask``; the Status is then asked only of profiles a job is rejected
      for);
    - ``affected_profiles(profiles) -> (P,) bool``: after ``sync`` returned True, which of
      these profiles its changes can reach (only those are recomputed; without it, all).
    """

    def flavor_mask(
        self, datasets: tuple[Dataset, ...], pool: Pool
    ) -> tuple[np.ndarray, Status]: ...


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


@dataclass
class RoundSeries:
    """Per-step records (piecewise-constant intervals) for utilisation and queue metrics."""

    t0: list[float] = field(default_factory=list)
    t1: list[float] = field(default_factory=list)
    busy: list[np.ndarray] = field(default_factory=list)  # accelerator-seconds per flavor
    queued: list[int] = field(default_factory=list)
    active: list[int] = field(default_factory=list)
    rounds: int = 0
    policy_calls: int = 0
    #: Accelerator-seconds per flavor held by services (``ServingHook``), aligned with ``busy``.
    serving: list[np.ndarray] = field(default_factory=list)


class Scheduler:
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
        self._feas = feasibility or class_feasibility(workload.classes, pool, throughputs)
        #: Flavor mask per data profile; a stale row is recomputed when a job needs it.
        self._masks = np.zeros((0, F), dtype=bool)
        self._stale = np.zeros(0, dtype=bool)
        self._mask_status: list[Status | None] = []
        self._sf_class = np.array([c.scale_factor for c in workload.classes], dtype=np.int64)
        self._t_prev = clock.now()
        self._reset_at = -math.inf
        #: Seconds of job time per flavor since the last reset (Gavel's ``worker_time_so_far``).
        self._flavor_time = np.zeros(F)
        self._speed_order = speed_order(self._feas.rates)
        self._first = True
        self._next_round = -math.inf
        self._deferred = False
        self._done = False
        self._policy_next = math.inf
        self._power = pool.flavor_power_kw
        self._carbon = pool.flavor_carbon
        self._price = pool.flavor_price

    # ---- admission -------------------------------------------------------------------
    def invalidate_profile_masks(self) -> None:
        """Forget the per-profile masks (a check's answers changed); recomputed when needed."""
        self._stale[:] = True
        self._mask_status = [None] * len(self._mask_status)

    def _sync_checks(self, now: float) -> bool:
        """Let time-dependent checks move to ``now``; True when masks may have changed.

        Only the masks of profiles that active jobs use and that a check's changes can reach
        are recomputed now; every other row is marked stale (recomputed if a job needs it)."""
        changed = False
        for check in self.checks:
            sync = getattr(check, "sync", None)
            if sync is None or not sync(now):
                continue
            changed = True
            narrow = getattr(check, "affected_profiles", None)
            if narrow is None:
                self.invalidate_profile_masks()
                continue
            P = len(self._masks)
            used = np.unique(self.workload.data_profile[self.active.job])
            fresh = used[(used < P)]
            fresh = fresh[~self._stale[fresh]]
            hit = np.asarray(narrow([self.workload.profiles[p] for p in fresh]), dtype=bool)
            keep = np.zeros(P, dtype=bool)
            keep[fresh[~hit]] = True
            self._stale |= ~keep
            for p in np.nonzero(~keep)[0]:
                self._mask_status[p] = None
        return changed

    def _reject_stranded(self, now: float) -> bool:
        """Reject active jobs that no longer have any legal flavor (e.g. an approval expired)."""
        a, h, w = self.active, self.history, self.workload
        if len(a) == 0:
            return False
        masks = self._profile_masks()
        cls, prof = w.job_class[a.job], w.data_profile[a.job]
        ok = np.any((self._feas.rates[cls] > 0) & masks[prof], axis=1)
        if ok.all():
            return False
        rows = np.nonzero(~ok)[0]
        jobs = a.job[rows]
        running = jobs[a.running[rows] >= 0]
        if len(running):
            if self.placer is not None:
                self.placer.release(running)
            self.cluster.apply(
                RoundPlan(now=now, round_seconds=self.config.round_seconds, stop=running)
            )
        for j in jobs:
            self._reject(int(j), self._why_not(int(j)), now)
        h.row_of[jobs] = -1
        a.keep(ok)
        h.row_of[a.job] = np.arange(len(a))
        return True

    def _reject(self, job: int, st: Status, now: float) -> None:
        if st.ok:
            st = Status.unresolvable(st.reason or "no legal flavor", st.source or "admission")
        self.rejections[job] = st
        self.history.state[job] = REJECTED
        self._emit(job, "rejected", st.reason)
        for check in self.checks:
            hook = getattr(check, "on_reject", None)
            if hook is not None:
                hook(job, st, now)

    def _profile_masks(self, need: np.ndarray | None = None) -> np.ndarray:
        """(M, F) flavor masks per data profile; the rows of ``need`` (default: the profiles
        of active jobs) are up to date, others may be stale (no job uses them now)."""
        P, F = len(self.workload.profiles), len(self.pool.flavors)
        if len(self._masks) < P:
            grow = P - len(self._masks)
            self._masks = np.vstack([self._masks, np.ones((grow, F), dtype=bool)])
            self._stale = np.concatenate([self._stale, np.ones(grow, dtype=bool)])
            self._mask_status += [None] * grow
        if need is None:
            need = self.workload.data_profile[self.active.job]
        todo = need[self._stale[need]]
        if len(todo):
            todo = np.unique(todo)
            profiles = [self.workload.profiles[p] for p in todo]
            mask = np.ones((len(todo), F), dtype=bool)
            for check in self.checks:
                many = getattr(check, "flavor_masks", None)
                if many is not None:
                    mask &= np.asarray(many(profiles, self.pool), dtype=bool).reshape(-1, F)
                else:
                    rows = [check.flavor_mask(d, self.pool)[0] for d in profiles]
                    mask &= np.array(rows, dtype=bool).reshape(-1, F)
            self._masks[todo] = mask
            self._stale[todo] = False
        return self._masks

    def _status_of(self, p: int) -> Status:
        """Why profile ``p``'s mask is what it is (asked only when a job is rejected)."""
        st = self._mask_status[p]
        if st is None:
            st = Status.success()
            for check in self.checks:
                _m, s = check.flavor_mask(self.workload.profiles[p], self.pool)
                # keep the first refusal; else the first restriction that names its rule
                if st.ok and (not s.ok or (s.source and not st.source)):
                    st = s
            self._mask_status[p] = st
        return st

    def admit(self, jobs: np.ndarray) -> np.ndarray:
        """Split arrivals into admitted (returned) and rejected (recorded with a reason)."""
        if len(jobs) == 0:
            return jobs
        if self._feas.rates.shape[0] < len(self.workload.classes):
            self._feas = class_feasibility(self.workload.classes, self.pool, self.throughputs)
            self._sf_class = np.array(
                [c.scale_factor for c in self.workload.classes], dtype=np.int64
            )
        cls = self.workload.job_class[jobs]
        prof = self.workload.data_profile[jobs]
        masks = self._profile_masks(prof)
        ok = np.any((self._feas.rates[cls] > 0) & masks[prof], axis=1)
        for j in jobs[~ok]:
            self._reject(int(j), self._why_not(int(j)), self._t_prev)
        return jobs[ok]

    def _why_not(self, j: int) -> Status:
        """Why job ``j`` has no flavor it may run on."""
        c, p = int(self.workload.job_class[j]), int(self.workload.data_profile[j])
        st = self._feas.status[c]
        if st.ok:
            st = self._status_of(p)
        if st.ok:
            # Each check alone allows some flavor, but none the job can run on: name the
            # check's restricting rule when it gave one (e.g. ``residency:CN-1``).
            why = "no flavor is both able to run the job and allowed for its data"
            st = Status.unresolvable(
                f"{why}: {st.reason}" if st.reason else why, st.source or "admission"
            )
        return st

    # ---- one round ----------------------------------------------------------------
    def _emit(self, job: int, kind: str, detail: str = "", at: float | None = None) -> None:
        if self.sink is not None:
            self.sink.on_event(job, kind, self._t_prev if at is None else at, detail)

    def _account(self, now: float) -> bool:
        obs = self.cluster.observe(now)
        a, h = self.active, self.history
        ended = obs.completed
        ended_at = obs.completed_at
        if len(obs.errored):
            ended = np.concatenate([obs.completed, obs.errored]).astype(np.int64)
            ended_at = np.concatenate([obs.completed_at, obs.errored_at])
        t0 = self._t_prev
        run_rows = np.nonzero(a.running >= 0)[0]
        end = np.full(len(run_rows), now)
        if len(ended):
            pos = np.full(len(a), -1, dtype=np.int64)
            pos[run_rows] = np.arange(len(run_rows))
            crow = h.row_of[ended]
            valid = (crow >= 0) & (pos[np.maximum(crow, 0)] >= 0)
            end[pos[crow[valid]]] = ended_at[valid]
        ran = np.maximum(end - t0, 0.0)
        jobs = a.job[run_rows]
        flv = a.running[run_rows]
        sf = self._sf_class[self.workload.job_class[jobs]]
        acc = ran * sf
        a.attained[run_rows] += acc
        a.received[run_rows, flv] += ran
        self._flavor_time += np.bincount(flv, weights=ran, minlength=len(self._flavor_time))
        h.accel_seconds[jobs] += acc
        h.cost_usd[jobs] += acc * self._price[flv] / 3600.0
        kwh = acc * self._power[flv] / 3600.0
        h.energy_kwh[jobs] += kwh
        h.carbon_kg[jobs] += kwh * self._carbon[flv] / 1000.0
        F = len(self.pool.flavors)
        s = self.series
        if now > t0 or len(run_rows):
            s.t0.append(t0)
            s.t1.append(now)
            s.busy.append(np.bincount(flv, weights=acc, minlength=F))
            if self.serving is not None:
                s.serving.append(self.serving.held() * (now - t0))
            s.queued.append(int(np.count_nonzero(a.running < 0)))
            s.active.append(len(a))
        if len(obs.progress_job):
            rows = h.row_of[obs.progress_job]
            ok = rows >= 0
            a.steps_done[rows[ok]] = obs.progress_steps[ok]
        changed = False
        if self.placer is not None and (len(obs.failed) or len(ended)):
            self.placer.release(np.concatenate([obs.failed, ended]).astype(np.int64))
        if len(obs.failed):
            rows = h.row_of[obs.failed]
            rows = rows[rows >= 0]
            a.running[rows] = -1
            for j in obs.failed:
                self._emit(int(j), "requeued", "workers failed")
            changed = True
        if len(ended):
            h.end[ended] = ended_at
            h.state[obs.completed] = COMPLETED
            h.state[obs.errored] = FAILED
            self._remove(ended)
            for j, t in zip(obs.completed, obs.completed_at, strict=True):
                self._emit(int(j), "succeeded", at=float(t))
            for j, t in zip(obs.errored, obs.errored_at, strict=True):
                self._emit(int(j), "failed", "exited with an error", at=float(t))
            changed = True
        return changed

    def _remove(self, jobs: np.ndarray) -> None:
        """Drop jobs from the active set (finished, failed or cancelled)."""
        a, h = self.active, self.history
        keep = np.ones(len(a), dtype=bool)
        rows = h.row_of[jobs]
        keep[rows[rows >= 0]] = False
        h.row_of[jobs] = -1
        a.keep(keep)
        h.row_of[a.job] = np.arange(len(a))

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
        a, h = self.active, self.history
        self.active.add(admitted)
        if len(admitted):
            self.active.received[-len(admitted) :] = self._half_round  # as in ``step``
        h.row_of[a.job] = np.arange(len(a))
        a.running[h.row_of[admitted]] = np.asarray(flavors, dtype=np.int64)[ok]
        h.starts[admitted] += 1
        h.first_start[admitted] = np.asarray(started_at, dtype=np.float64)[ok]
        for j in admitted:
            self._emit(int(j), "adopted")
        return ok

    def cancel(self, jobs: np.ndarray, reason: str = "cancelled") -> np.ndarray:
        """Withdraw jobs; running ones are killed through the cluster. Returns those withdrawn.

        Jobs already finished, failed, rejected or cancelled are left alone.
        """
        jobs = np.asarray(jobs, dtype=np.int64)
        if len(jobs) == 0:
            return jobs
        h, a = self.history, self.active
        h.ensure(int(jobs.max()) + 1)
        jobs = jobs[h.state[jobs] == 0]
        rows = h.row_of[jobs]
        rows = rows[rows >= 0]
        kill = a.job[rows[a.running[rows] >= 0]]
        now = self.clock.now()
        if len(kill):
            if self.placer is not None:
                self.placer.release(kill)
            self.cluster.apply(
                RoundPlan(now=now, round_seconds=self.config.round_seconds, kill=kill)
            )
        self._remove(jobs)
        h.state[jobs] = CANCELLED
        h.end[jobs] = now
        for j in jobs:
            self._emit(int(j), "cancelled", reason, at=now)
        return jobs

    def policy_input(self, now: float) -> PolicyInput:
        a, w = self.active, self.workload
        jobs = a.job
        cls = w.job_class[jobs]
        return PolicyInput(
            now=now,
            job=jobs,
            scale_factor=self._sf_class[cls],
            weight=w.weight[jobs],
            arrival=w.arrival[jobs],
            attained=a.attained,
            steps_done=a.steps_done,
            steps_total=w.total_steps[jobs],
            running=a.running,
            deadline=w.arrival[jobs] + w.deadline[jobs],
            tenant=w.tenant[jobs],
            job_class=cls,
            job_mask_index=w.data_profile[jobs],
            class_throughput=self._feas.rates,
            feasible_masks=self._profile_masks(),
            capacity=self.pool.capacity,
            price=self._price,
            extras=self._extras(w),
        )

    def _extras(self, w: Workload) -> dict:
        extras: dict = {"pool": self.pool, "throughputs": self.throughputs, "workload": w}
        for check in self.checks:
            more = getattr(check, "policy_extras", None)
            if more is not None:
                extras.update(more(self.pool, w))
        return extras

    def step(self) -> bool:
        """Run one round at the clock's current time. Returns False when all work is done."""
        now = self.clock.now()
        changed = self._account(now)
        self._t_prev = now
        if self._sync_checks(now):
            self._reject_stranded(now)
            changed = True
        arrived = np.asarray(self.source.arrivals(now), dtype=np.int64)
        if len(arrived):
            self.history.ensure(int(arrived.max()) + 1)
            admitted = self.admit(arrived)
            if len(admitted):
                self.active.add(admitted)
                # Gavel starts every job's received time at half a round on each flavor.
                self.active.received[-len(admitted) :] = self._half_round
                self.history.row_of[self.active.job] = np.arange(len(self.active))
                for j in admitted:
                    self._emit(int(j), "admitted")
                changed = True
        serving = self.serving is not None and self.serving.active(now)
        if len(self.active) == 0 and self.source.exhausted() and not serving:
            self._done = True
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
            or now >= self._policy_next
        ):
            self._decide(now, changed or self._deferred)
            self._deferred = False
            self._next_round = now + self.config.round_seconds
        elif serving:
            self._serve(now)
            if len(self.active) == 0 and self.source.exhausted() and not self.serving.active(now):
                self._done = True  # the services just ended and nothing else is left
                return False
        self._first = False
        self.series.rounds += 1
        return True

    @property
    def _half_round(self) -> float:
        return self.config.round_seconds / 2.0

    def _reset_counters(self, now: float) -> None:
        """Gavel's reset: fold the period's shortfall into deficits, restart the time counters."""
        a, half = self.active, self._half_round
        if math.isfinite(self._reset_at):
            elapsed = now - self._reset_at
            a.deficit += a.share * elapsed - (a.received - half)
        a.received[:] = half
        self._flavor_time[:] = half * len(a)
        self._reset_at = now

    def _flavor_order(self) -> np.ndarray:
        if getattr(self.policy, "aware", True):
            return self._speed_order
        return np.roll(self._speed_order, -(self.series.rounds % len(self._speed_order)))

    def _decide(self, now: float, changed: bool) -> None:
        a = self.active
        F = len(self.pool.flavors)
        time_shared = bool(getattr(self.policy, "time_shared", False))
        reset = changed and now - self._reset_at >= self.config.min_reset_seconds
        if reset:
            self._reset_counters(now)
        recompute = (
            not time_shared or reset or self._first or (changed and self.config.recompute_on_change)
        )
        new = np.full(len(a), -1, dtype=np.int64)
        rows = np.arange(len(a))
        inp = None
        allowed = None  # (n, F) flavors each row may use, when the gate says so per flavor
        held_back = self.serving is not None or not self.workload.preemptible.all()
        if recompute or self.gate is not None or held_back:
            inp = self.policy_input(now)
            if self.gate is not None:
                ok = np.asarray(self.gate.eligible(inp), dtype=bool)
                if ok.ndim == 2:
                    allowed, ok = ok, ok.any(axis=1)
                if not ok.all():
                    rows = np.nonzero(ok)[0]
                    inp = subset_input(inp, rows)
                if allowed is not None:
                    inp = restrict_flavors(inp, allowed[rows])
        pinned = np.zeros(0, dtype=np.int64)
        capacity = self.pool.capacity
        if held_back:
            inp, rows, pinned = self._hold_back(inp, rows)
            capacity = inp.capacity
        if time_shared:
            if recompute:
                alloc = self.policy.allocate(inp)
                self.series.policy_calls += 1
                a.share[:] = 0.0
                a.share[rows] = alloc.dense(len(rows), F)
            usable = np.zeros((len(a), F), dtype=bool)
            cls = self.workload.job_class[a.job[rows]]
            prof = self.workload.data_profile[a.job[rows]]
            usable[rows] = (self._feas.rates[cls] > 0) & self._profile_masks()[prof]
            if allowed is not None:
                usable[rows] &= allowed[rows]
            new = assign_time_shares(
                a.share,
                usable,
                self._sf_class[self.workload.job_class[a.job]],
                capacity,
                a.running,
                a.received,
                self._flavor_time,
                a.deficit,
                self._flavor_order(),
            )
        else:
            alloc = self.policy.allocate(inp)
            self.series.policy_calls += 1
            new[rows] = assign_ordered(alloc, inp.scale_factor, inp.capacity, inp.running)
            self._enforce_checks(new)
            next_change = getattr(self.policy, "next_change", None)
            if next_change is not None:
                self._policy_next = next_change(inp, new[rows])
        new[pinned] = a.running[pinned]
        self._apply(now, new)

    def _serve(self, now: float) -> None:
        """A services-only round (between training rounds): services reserve what they need,
        preempting preemptible rows if they must; every other row keeps what it runs on.
        Accelerators a service releases go to the training queue at the next training round."""
        a = self.active
        rows = np.arange(len(a))
        inp = self.policy_input(now)
        _, kept, pinned = self._hold_back(inp, rows)
        evict = a.running >= 0
        evict[kept] = False
        evict[pinned] = False
        if evict.any():
            new = a.running.copy()
            new[evict] = -1
            self._apply(now, new)

    def _hold_back(
        self, inp: PolicyInput, rows: np.ndarray
    ) -> tuple[PolicyInput, np.ndarray, np.ndarray]:
        """Take out of the policy's hands what it may not touch this round.

        Non-preemptible ("on-demand") running jobs keep their accelerators: neither the policy
        nor a service takes them (a quota gate above still can). Services (``serving``) then
        reserve their accelerators, preempting preemptible rows if they must; those rows sit
        this round out. Returns the reduced input, its rows, and the pinned rows.
        """
        pin = (inp.running >= 0) & ~self.workload.preemptible[inp.job]
        pinned = rows[pin]
        if pin.any():
            held = np.bincount(
                inp.running[pin], weights=inp.scale_factor[pin], minlength=len(inp.capacity)
            )
            keep = np.nonzero(~pin)[0]
            rows = rows[keep]
            inp = replace(
                subset_input(inp, keep), capacity=np.maximum(inp.capacity - held, 0).astype(int)
            )
        if self.serving is not None:
            res = self.serving.reserve(inp)
            inp = replace(inp, capacity=np.maximum(inp.capacity - res.capacity, 0))
            if res.evict.any():
                keep = np.nonzero(~res.evict)[0]
                rows = rows[keep]
                inp = subset_input(inp, keep)
        return inp, rows, pinned

    def _enforce_checks(self, new: np.ndarray) -> None:
        """Admission checks hold whatever the policy proposed: a row never gets a flavor its
        data profile's mask forbids (and a running one is stopped)."""
        if not self.checks:
            return
        a = self.active
        masks = self._profile_masks()
        on = np.nonzero(new >= 0)[0]
        legal = masks[self.workload.data_profile[a.job[on]], new[on]]
        new[on[~legal]] = -1

    def _apply(self, now: float, new: np.ndarray) -> None:
        """Stop, start and place what changed between ``a.running`` and ``new``."""
        a, h = self.active, self.history
        stop_rows = np.nonzero((a.running >= 0) & (new != a.running))[0]
        start_rows = np.nonzero((new >= 0) & (new != a.running))[0]
        if len(stop_rows) == 0 and len(start_rows) == 0:
            return
        stop_jobs = a.job[stop_rows]
        placements: list[Placement] = []
        if self.placer is not None:
            if len(stop_jobs):
                self.placer.release(stop_jobs)
            if len(start_rows):
                placements, placed = self.placer.place(a.job[start_rows], new[start_rows], now)
                new[start_rows[~placed]] = -1
                start_rows = start_rows[placed]
        start_delay = np.zeros(len(start_rows))
        for check in self.checks:
            confirm = getattr(check, "confirm_starts", None)
            if confirm is None or len(start_rows) == 0:
                continue
            ok, delay, cost = confirm(self.workload, a.job[start_rows], new[start_rows], now)
            ok = np.asarray(ok, dtype=bool)
            if not ok.all():
                if self.placer is not None:
                    self.placer.release(a.job[start_rows[~ok]])
                new[start_rows[~ok]] = -1
            h.cost_usd[a.job[start_rows[ok]]] += np.asarray(cost)[ok]
            start_delay = start_delay[ok] + np.asarray(delay)[ok]
            start_rows = start_rows[ok]
        if self.placer is not None and len(placements) and len(start_rows) < len(placements):
            keep = set(a.job[start_rows].tolist())
            placements = [p for p in placements if p.job in keep]
        if len(stop_rows) == 0 and len(start_rows) == 0:
            return
        start_jobs = a.job[start_rows]
        h.preemptions[stop_jobs] += 1
        h.starts[start_jobs] += 1
        fresh = np.isnan(h.first_start[start_jobs])
        h.first_start[start_jobs[fresh]] = now
        self.cluster.apply(
            RoundPlan(
                now=now,
                round_seconds=self.config.round_seconds,
                stop=stop_jobs,
                start=start_jobs,
                start_flavor=new[start_rows],
                placements=tuple(placements),
                start_delay=start_delay,
            )
        )
        a.running = new
        if self.sink is not None:
            for j in stop_jobs:
                self._emit(int(j), "preempted")
            for j, f in zip(start_jobs, new[start_rows], strict=True):
                self._emit(int(j), "running", self.pool.flavors[int(f)].name)

    def next_time(self, now: float) -> float:
        r = self.config.round_seconds
        t_next = now + r
        if self.serving is not None and self.serving.active(now):
            return now + float(getattr(self.serving, "interval_s", r))
        nxt_arrival = self.source.next_arrival()
        if len(self.active) == 0:
            t_next = max(t_next, nxt_arrival) if math.isfinite(nxt_arrival) else t_next
        elif self.policy.event_driven:
            t_evt = min(self.cluster.next_event_time(), nxt_arrival, self._policy_next)
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
