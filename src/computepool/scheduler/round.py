"""One policy round: from the active set to the ``RoundPlan`` a loop hands its cluster.

``RoundMaker`` owns the round's decision: it builds the policy's view
(``scheduler/policy_view.py``), lets the gate and ``hold_back`` take rows out, calls the policy,
turns the allocation into one flavor per row with the mechanism (``scheduler/mechanism.py``,
``scheduler/pairs.py``: Gavel's priorities for time-shared policies, the policy's order for the
others), and plans what changed (``scheduler/starts.py``: slots, the checks' last word) into the
state's outbox. It reads a ``RoundContext`` and changes one ``SchedulerState``
(``scheduler/contract.py``): the mechanism's memory between rounds (the time counters, shared
with accounting, when they are due for a reset, when an event-driven policy wants its next
round). The Scheduler (``scheduler/loop.py``) decides when a round happens; a loop applies it.
"""

from __future__ import annotations

import time

import numpy as np

from computepool.model.allocation import Allocation, PairShares
from computepool.model.status import Status
from computepool.model.workload import Workload
from computepool.policies.base import Policy, PolicyInput
from computepool.scheduler.accounting import RoundSeries, TimeCounters
from computepool.scheduler.admission_masks import (
    forbid_illegal,
    usable_flavors,
)
from computepool.scheduler.contract import Outbox, RoundContext, SchedulerState
from computepool.scheduler.interfaces import Placement, RoundPlan
from computepool.scheduler.isolated_clock import with_isolated_clock
from computepool.scheduler.mechanism import assign_ordered, assign_time_shares, speed_order
from computepool.scheduler.pairs import assign_round, class_pair_rates
from computepool.scheduler.policy_view import (
    build_policy_input,
    flavor_order,
    gate_input,
    hold_back,
)
from computepool.scheduler.reasons import (
    CHECK,
    PLACEMENT,
    RoundRefusals,
    capacity_status,
    check_status,
    free_per_flavor,
    placement_status,
)
from computepool.scheduler.starts import confirm_starts, count_starts, place_starts
from computepool.scheduler.state import ActiveSet, JobHistory


def check_policy_placement(policy: Policy, placed: bool) -> None:
    """Refuse a policy that cannot work with device placement (it once ran silently as
    another policy)."""
    if placed and getattr(policy, "space_sharing", False):
        raise ValueError(
            f"policy {getattr(policy, 'name', policy)!r} shares devices between pairs of jobs "
            "(space sharing), but device placement binds one job per device slot: use a "
            "time-sharing policy such as 'las' with placement (the live pool always places), "
            "or simulate it without --placement"
        )


class RoundMaker:
    """Decides policy rounds (and services-only rounds) for one Scheduler: reads its
    ``RoundContext``, changes its ``SchedulerState``, and leaves the round's plan and events in
    the state's outbox for the loop to apply."""

    def __init__(self, ctx: RoundContext, state: SchedulerState) -> None:
        self.ctx, self.state = ctx, state
        self.pool, self.workload, self.throughputs = ctx.pool, ctx.workload, ctx.throughputs
        self.policy, self.admission = ctx.policy, ctx.admission
        self.round_seconds = ctx.config.round_seconds
        self.checks = ctx.checks
        self.placer, self.gate, self.serving = ctx.placer, ctx.gate, ctx.serving
        self.speed_order = speed_order(ctx.admission.rates)
        #: Flavor names by index, for the events of a round's starts.
        self.flavor_names = [f.name for f in ctx.pool.flavors]
        #: Space sharing (policies with ``space_sharing``; refused with a Placer, which binds
        #: one job per device slot): pair rates per class and the pairs the mechanism tracks.
        check_policy_placement(ctx.policy, ctx.placer is not None)
        self.space_sharing = bool(getattr(ctx.policy, "space_sharing", False))

    # The state's columns, by their round-level names.
    @property
    def active(self) -> ActiveSet:
        return self.state.active

    @property
    def history(self) -> JobHistory:
        return self.state.history

    @property
    def series(self) -> RoundSeries:
        return self.state.series

    @property
    def counters(self) -> TimeCounters:
        return self.state.counters

    @property
    def refusals(self) -> RoundRefusals:
        return self.state.refusals

    @property
    def sink(self) -> Outbox:
        return self.state.outbox

    @property
    def policy_next(self) -> float:
        return self.state.policy_next

    def _profile_masks(self) -> np.ndarray:
        """Per-profile flavor masks, up to date for the profiles of active jobs."""
        return self.admission.profile_masks(self.workload.data_profile[self.active.job])

    def pair_rates(self) -> np.ndarray:
        """(C, C, F) pair rates for the workload's classes (computed once, grown with them)."""
        C = len(self.workload.classes)
        st = self.state
        if st.pair_rates is None or st.pair_rates.shape[0] < C:
            accels = [f.accelerator for f in self.pool.flavors]
            keys = [c.key for c in self.workload.classes]
            rates = self.admission.rates
            st.pair_rates = class_pair_rates(keys, accels, self.throughputs, rates)
        return st.pair_rates

    def policy_input(self, now: float) -> PolicyInput:
        return build_policy_input(
            now,
            self.active,
            self.workload,
            self.admission.scale_factor,
            self.admission.rates,
            self._profile_masks(),
            self.pool.capacity,
            self.pool.flavor_price,
            self._extras(self.workload),
        )

    def _extras(self, w: Workload) -> dict:
        extras: dict = {"pool": self.pool, "throughputs": self.throughputs, "workload": w}
        if self.space_sharing:
            extras["pair_rates"] = self.pair_rates()
        for check in self.checks:
            more = getattr(check, "policy_extras", None)
            if more is not None:
                extras.update(more(self.pool, w))
        return extras

    @property
    def _half_round(self) -> float:
        return self.round_seconds / 2.0

    def _flavor_order(self) -> np.ndarray:
        aware = bool(getattr(self.policy, "aware", True))
        return flavor_order(self.speed_order, aware, self.series.rounds)

    # ---- the decision ------------------------------------------------------------
    def decide(self, now: float, changed: bool, first: bool, at: float) -> None:
        """The policy's round: reset the counters when due, let the gate and ``hold_back``
        take rows out, allocate (time-shared policies: only when the allocation is
        recomputed), turn the allocation into one flavor per row and apply it. ``first``: the
        loop's first round (the allocation is computed); events are stamped ``at``."""
        a, c, st, cfg = self.active, self.counters, self.state, self.ctx.config
        time_shared = bool(getattr(self.policy, "time_shared", False))
        st.pending_change = st.pending_change or changed
        second = cfg.gavel_admission and c.resets == 1
        reset = st.pending_change and (now - c.reset_at >= cfg.min_reset_seconds or second)
        if reset:
            st.pending_change = False
            c.reset(a, now, self._half_round)
        recompute = not time_shared or reset or first or (changed and cfg.recompute_on_change)
        rows = np.arange(len(a))
        inp: PolicyInput | None = None
        allowed = None  # (n, F) flavors each row may use, when the gate says so per flavor
        held_back = self.serving is not None or not self.workload.preemptible.all()
        self.refusals.clear()
        if recompute or self.gate is not None or held_back:
            inp = self.policy_input(now)
            if self.gate is not None:
                full = inp
                inp, rows, allowed = gate_input(self.gate, inp)
                self.refusals.gate_input = full
                self.refusals.let_in = frozenset(a.job[rows].tolist())
        pinned = np.zeros(0, dtype=np.int64)
        capacity = self.pool.capacity
        if held_back:
            inp, rows, pinned = hold_back(inp, rows, self.workload.preemptible, self.serving)
            capacity = inp.capacity
        if time_shared:
            if recompute:
                self._allocate_shares(inp, rows)
            self._assign_shares(now, at, rows, allowed, pinned, capacity)
            return
        alloc = self._timed_allocate(inp)
        new = np.full(len(a), -1, dtype=np.int64)
        new[rows] = assign_ordered(alloc, inp.scale_factor, inp.capacity, inp.running)
        self._enforce_checks(new)
        next_change = getattr(self.policy, "next_change", None)
        if next_change is not None:
            st.policy_next = next_change(inp, new[rows])
        new[pinned] = a.running[pinned]
        self._apply(now, at, new)

    def _timed_allocate(self, inp: PolicyInput) -> Allocation:
        """The policy's allocation, its wall time recorded per call in the round series."""
        t0 = time.perf_counter()
        inp = with_isolated_clock(self.policy, self.state.isolated_clock, inp)
        alloc = self.policy.allocate(inp)
        self.series.policy_seconds.append(time.perf_counter() - t0)
        self.series.policy_at.append(inp.now)
        self.series.policy_calls += 1
        return alloc

    def _allocate_shares(self, inp: PolicyInput, rows: np.ndarray) -> None:
        """Time-shared policies: the new allocation (time shares of ``rows``, and the pairs'
        shares under space sharing) is in force from now on."""
        a, c = self.active, self.counters
        alloc = self._timed_allocate(inp)
        a.share[:] = 0.0
        a.share[rows] = alloc.dense(len(rows), len(self.pool.flavors))
        a.allocated[:] = False
        a.allocated[rows] = True
        if self.space_sharing:
            pairs = alloc.pairs if alloc.pairs is not None else PairShares.empty()
            c.pairs = c.pairs.replaced(pairs, a.job[rows], self._half_round)

    def _assign_shares(
        self,
        now: float,
        at: float,
        rows: np.ndarray,
        allowed: np.ndarray | None,
        pinned: np.ndarray,
        capacity: np.ndarray,
    ) -> None:
        """Time-shared policies: Gavel's priorities over the shares in force pick who runs on
        ``capacity`` (``rows`` may run, within ``allowed``; ``pinned`` keep what they run on);
        tracked pairs compete with single rows."""
        a, w, c = self.active, self.workload, self.counters
        jobs = a.job[rows]
        mine = usable_flavors(
            self.admission.rates, self._profile_masks(), w.job_class[jobs], w.data_profile[jobs]
        )
        if len(rows) == len(a):  # every row (``rows`` ascending: all of them, in order)
            usable = mine
        else:
            usable = np.zeros((len(a), len(self.pool.flavors)), dtype=bool)
            usable[rows] = mine
        if allowed is not None:
            usable[rows] &= allowed[rows]
        if self.ctx.config.gavel_admission:
            usable[~a.allocated] = False
        if len(c.pairs):
            usable[pinned] = False
            new, partner = self._assign_pairs(usable, capacity)
            new[pinned] = a.running[pinned]
            partner[pinned] = a.partner[pinned]
            self._apply(now, at, new, partner)
            return
        new = assign_time_shares(
            a.share,
            usable,
            self.admission.scale_factor[w.job_class[a.job]],
            capacity,
            a.running,
            a.received,
            c.flavor_time,
            c.owed(a, now, self._half_round),
            self._flavor_order(),
            self.ctx.config.starvation_deficit_s,
        )
        new[pinned] = a.running[pinned]
        self._apply(now, at, new)

    def _assign_pairs(
        self, usable: np.ndarray, capacity: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        a, w, c = self.active, self.workload, self.counters
        return assign_round(
            c.pairs,
            a,
            self.history.row_of,
            usable,
            self.pair_rates(),
            w.job_class,
            self.admission.scale_factor[w.job_class[a.job]],
            capacity,
            c.flavor_time,
            self._flavor_order(),
            self.ctx.config.starvation_deficit_s,
        )

    def serve(self, now: float, at: float) -> None:
        """A services-only round (between training rounds): services reserve what they need,
        preempting preemptible rows if they must; every other row keeps what it runs on.
        Accelerators a service releases go to the training queue at the next training round."""
        a = self.active
        rows = np.arange(len(a))
        inp = self.policy_input(now)
        _, kept, pinned = hold_back(inp, rows, self.workload.preemptible, self.serving)
        evict = a.running >= 0
        evict[kept] = False
        evict[pinned] = False
        if evict.any():
            new = a.running.copy()
            new[evict] = -1
            self._apply(now, at, new)

    def _refused(self, proposed: dict[int, int], kept_rows: np.ndarray, kind: str) -> None:
        kept = set(self.active.job[kept_rows].tolist())
        for j, f in proposed.items():
            if j not in kept:
                self.refusals.refused[j] = (kind, f)

    def explain(self, job: int) -> Status | None:
        """Why ``job`` waits after the last round (None: it is not waiting in the pool)."""
        a, w = self.active, self.workload
        row = int(self.history.row_of[job]) if job < len(self.history.row_of) else -1
        if row < 0 or row >= len(a) or a.running[row] >= 0:
            return None
        sf = self.admission.scale_factor[w.job_class[a.job]]
        free = free_per_flavor(self.pool, a.running, sf)
        cls = w.classes[int(w.job_class[job])]
        if job in self.refusals.refused:
            kind, f = self.refusals.refused[job]
            if kind == CHECK:
                return check_status(self.pool, f)
            # the placer's shape of the job (workers x accelerators each), when it has one
            shape = getattr(self.placer, "shape", None)
            workers, per = shape(job) if callable(shape) else (1, cls.scale_factor)
            return placement_status(self.pool, f, float(free[f]), int(workers), float(per))
        full, let_in = self.refusals.gate_input, self.refusals.let_in
        if let_in is not None and job not in let_in and full is not None:
            rows = np.nonzero(full.job == job)[0]
            why = getattr(self.gate, "explain", None)
            if len(rows) and why is not None:
                return why(full, int(rows[0]))
            return Status.unschedulable("held back by the round gate (quotas)", "quota")
        why_failed = self.state.start_failures.get(job)
        if why_failed is not None:
            return Status.unschedulable(
                f"its last start did not happen ({why_failed}); it waits to start again", "start"
            )
        usable = usable_flavors(
            self.admission.rates,
            self._profile_masks(),
            w.job_class[[job]],
            w.data_profile[[job]],
        )[0]
        name = str(getattr(self.policy, "name", self.policy))
        return capacity_status(self.pool, usable, free, float(cls.scale_factor), name)

    def _sit_out(self, new: np.ndarray) -> None:
        """Jobs whose start just failed do not start again in this round."""
        a = self.active
        jobs = np.fromiter(self.state.backoff, dtype=np.int64)
        rows = self.history.row_of[jobs[jobs < len(self.history.row_of)]]
        rows = rows[(rows >= 0) & (rows < len(a))]
        rows = rows[a.running[rows] < 0]
        new[rows] = -1

    def _enforce_checks(self, new: np.ndarray) -> None:
        """Admission checks hold whatever the policy proposed: a row never gets a flavor its
        data profile's mask forbids (and a running one is stopped)."""
        if self.checks:
            prof = self.workload.data_profile[self.active.job]
            forbid_illegal(new, self._profile_masks(), prof)

    def _apply(
        self, now: float, at: float, new: np.ndarray, partner: np.ndarray | None = None
    ) -> None:
        """Stop, start and place what changed between ``a.running`` and ``new`` (a row whose
        partner changes is restarted: a pair is one unit on its devices); events are stamped
        ``at``."""
        a, h = self.active, self.history
        if self.state.backoff:
            self._sit_out(new)
        alone = partner is None  # no row shares devices this round
        if partner is None:
            partner = np.full(len(a), -1, dtype=np.int64)
        moved = (new != a.running) | (partner != a.partner)
        stop_rows = np.nonzero((a.running >= 0) & moved)[0]
        start_rows = np.nonzero((new >= 0) & moved)[0]
        if len(stop_rows) == 0 and len(start_rows) == 0:
            return
        stop_jobs = a.job[stop_rows]
        placements: list[Placement] = []
        # what each start proposed, for the refusals (only a placer or a check refuses starts)
        proposed: dict[int, int] = {}
        if self.placer is not None or self.checks:
            proposed = dict(zip(a.job[start_rows].tolist(), new[start_rows].tolist(), strict=True))
        if self.placer is not None:
            placements, start_rows = place_starts(
                self.placer, a.job, new, stop_jobs, start_rows, now
            )
            self._refused(proposed, start_rows, PLACEMENT)
            proposed = {j: f for j, f in proposed.items() if j not in self.refusals.refused}
        start_rows, start_delay = confirm_starts(
            self.checks, self.placer, self.workload, h, a.job, new, start_rows, now
        )
        if proposed:
            self._refused(proposed, start_rows, CHECK)
        if self.placer is not None and len(placements) and len(start_rows) < len(placements):
            keep = set(a.job[start_rows].tolist())
            placements = [p for p in placements if p.job in keep]
        if len(stop_rows) == 0 and len(start_rows) == 0:
            return
        start_jobs = a.job[start_rows]
        count_starts(h, stop_jobs, start_jobs, now)
        if self.state.start_failures:
            for j in start_jobs.tolist():
                self.state.start_failures.pop(j, None)
        self.state.outbox.plans.append(
            RoundPlan(
                now=now,
                round_seconds=self.round_seconds,
                stop=stop_jobs,
                start=start_jobs,
                start_flavor=new[start_rows],
                placements=tuple(placements),
                start_delay=start_delay,
                start_partner=partner[start_rows],
            )
        )
        a.running = new
        a.partner = partner if alone else np.where(new >= 0, partner, -1)
        if self.sink.keep_events:
            names = self.flavor_names
            self.sink.on_events(stop_jobs.tolist(), "preempted", at)
            started_on = [names[f] for f in new[start_rows].tolist()]
            self.sink.on_events(start_jobs.tolist(), "running", at, started_on)
