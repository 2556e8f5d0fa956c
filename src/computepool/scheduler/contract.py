"""The contract between the scheduler and the loops that drive it (Nomad's shape).

The scheduler plans; a loop applies. Each step the loop observes its cluster (``Observation``:
completions, failures, progress, starts that did not happen), reads the arrivals, and hands both
to ``Scheduler.plan``, which changes only its own ``SchedulerState`` and returns a
``StepOutput``: the ``RoundPlan`` list to apply, in order, and the lifecycle events to report
once they are applied. The loop applies the plans to its cluster (the simulator's
``SimulatedCluster``, a live backend), tells its sink the events, and feeds whatever the
cluster could not do (``Applied.start_failed``) into the next step's observation: a start that
failed is an observation about that job (it waits again, with the reason), never an assumption.

``RoundContext`` is what a round reads and never changes (pool, workload, policy, the
configuration, the admission checks, the placer, gate and services); ``SchedulerState`` is all
the scheduler remembers between steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from itertools import repeat
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from computepool.model.status import Status
from computepool.scheduler.accounting import RoundSeries, TimeCounters
from computepool.scheduler.interfaces import Observation, RoundPlan
from computepool.scheduler.isolated_clock import IsolatedClock
from computepool.scheduler.reasons import RoundRefusals
from computepool.scheduler.state import ActiveSet, JobHistory

if TYPE_CHECKING:
    from computepool.model.pool import Pool
    from computepool.model.throughput import Throughputs
    from computepool.model.workload import Workload
    from computepool.policies.base import Policy
    from computepool.scheduler.admission_masks import Admission, ProfileCheck
    from computepool.scheduler.interfaces import JobSink, Placer, RoundGate
    from computepool.scheduler.policy_view import ServingHook

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
    #: Time-shared policies, Gavel's simulator around allocation resets: (1) a job that arrived
    #: after the allocation in force was computed does not run until an allocation includes it
    #: (``_schedule_jobs_on_workers`` skips jobs not in ``self._allocation``); (2) the second
    #: reset is not held back by ``min_reset_seconds`` (Gavel resets while its last reset time
    #: is still 0, i.e. again at the second round of a trace starting at 0). False: a new job
    #: runs on room the others leave, and every reset waits for the interval.
    gavel_admission: bool = False

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

    @property
    def starvation_deficit_s(self) -> float:
        return self.starvation_rounds * self.round_seconds


@dataclass(frozen=True)
class RoundContext:
    """What every round reads and no round changes."""

    pool: Pool
    workload: Workload
    throughputs: Throughputs
    policy: Policy
    config: SchedulerConfig
    admission: Admission
    checks: tuple[ProfileCheck, ...] = ()
    placer: Placer | None = None
    gate: RoundGate | None = None
    serving: ServingHook | None = None


class JobEvent(NamedTuple):
    """A lifecycle transition the loop reports once the step's plans are applied (a named
    tuple: a simulated round under a time-shared policy tells ~100 of them)."""

    job: int
    kind: str
    at: float
    detail: str = ""


@dataclass
class Outbox:
    """What a step produced so far: plans to apply (in order) and events to report. It is the
    scheduler's ``JobSink`` while it plans."""

    plans: list[RoundPlan] = field(default_factory=list)
    events: list[JobEvent] = field(default_factory=list)
    #: False when no loop reads the events (a simulation without a sink): none are built.
    keep_events: bool = True

    def on_event(self, job: int, kind: str, now: float, detail: str = "") -> None:
        if self.keep_events:
            self.events.append(JobEvent(job, kind, now, detail))

    def on_events(
        self, jobs: list[int], kind: str, now: float, details: list[str] | None = None
    ) -> None:
        """``on_event`` for each of ``jobs`` in order (``details``: one per job, or none)."""
        if not self.keep_events:
            return
        more = repeat("") if details is None else details
        self.events.extend(map(JobEvent, jobs, repeat(kind), repeat(now), more))

    def take(self) -> tuple[list[RoundPlan], list[JobEvent]]:
        plans, events = self.plans, self.events
        self.plans, self.events = [], []
        return plans, events


@dataclass(frozen=True)
class StepOutput:
    """One step's answer: apply ``plans`` in order, then report ``events``. ``more`` is False
    when all work is done (the loop stops after applying what is here)."""

    now: float
    plans: tuple[RoundPlan, ...] = ()
    events: tuple[JobEvent, ...] = ()
    more: bool = True


@dataclass(frozen=True)
class Applied:
    """What a cluster could not do of a plan: starts that did not happen, job -> why. A
    cluster whose ``apply`` returns None did all of it."""

    start_failed: dict[int, str] = field(default_factory=dict)


@dataclass
class SchedulerState:
    """Everything the scheduler remembers between steps."""

    active: ActiveSet
    history: JobHistory
    series: RoundSeries
    #: The mechanism's memory: time per flavor and per pair since the last reset.
    counters: TimeCounters
    #: Jobs rejected at admission (or later, when no flavor stays legal), with why.
    rejections: dict[int, Status] = field(default_factory=dict)
    #: What the last round refused, for ``pending_reason``.
    refusals: RoundRefusals = field(default_factory=RoundRefusals)
    #: Why a job's last start did not happen (the cluster said so), while it waits again.
    start_failures: dict[int, str] = field(default_factory=dict)
    #: Jobs whose start failed as observed in this step: they sit this round out (a start that
    #: keeps failing is not retried in a tight loop; the job shows why it waits).
    backoff: set[int] = field(default_factory=set)
    #: The job set changed since the allocation was last computed (Gavel's
    #: ``_need_to_update_allocation``): the next round past the reset interval resets.
    pending_change: bool = False
    #: When an event-driven policy wants a round next (``Policy.next_change``).
    policy_next: float = math.inf
    #: (C, C, F) pair rates per class pair (space sharing), computed once and grown.
    pair_rates: np.ndarray | None = None
    #: Gavel's cumulative isolated time per job (finish-time fairness), advanced per allocation.
    isolated_clock: IsolatedClock = field(default_factory=IsolatedClock)
    #: Time of the last step (usage is charged from here to the next one).
    t_prev: float = 0.0
    first: bool = True
    next_round: float = -math.inf
    #: A change seen between training rounds while only services acted.
    deferred: bool = False
    #: Set by ``wake`` (and withdrawals, capacity changes): the next round re-decides.
    woken: bool = False
    outbox: Outbox = field(default_factory=Outbox)

    @classmethod
    def empty(cls, num_flavors: int, num_jobs: int, now: float) -> SchedulerState:
        return cls(
            ActiveSet(num_flavors),
            JobHistory(num_jobs),
            RoundSeries(),
            TimeCounters.empty(num_flavors),
            t_prev=now,
        )


def with_start_failures(obs: Observation, failed: dict[int, str]) -> Observation:
    """``obs`` with the starts a cluster reported as not done (merged with any it had)."""
    if not failed:
        return obs
    return replace(obs, start_failed={**obs.start_failed, **failed})


def deliver(
    out: StepOutput, cluster: Any, sink: JobSink | None, pending: dict[int, str] | None = None
) -> dict[int, str]:
    """Apply ``out``'s plans to ``cluster`` in order, then tell ``sink`` its events. Returns
    the starts the cluster could not do (job -> why), added to ``pending`` when given: the
    loop feeds them into its next observation (``with_start_failures``)."""
    failed = pending if pending is not None else {}
    for plan in out.plans:
        applied = cluster.apply(plan)
        if isinstance(applied, Applied):
            failed.update(applied.start_failed)
    if sink is not None:
        for e in out.events:
            sink.on_event(e.job, e.kind, e.at, e.detail)
    return failed
