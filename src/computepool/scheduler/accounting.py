"""Usage accounting between two rounds: what each job, pair and flavor received, and at what cost.

``charge_usage`` charges the interval since the last round to the rows that ran in it (attained
accelerator-seconds, received time per flavor, cost, energy, carbon); a job that finished during
the interval is charged up to its exact end. ``TimeCounters`` is the round mechanism's memory
(Gavel's ``worker_time_so_far`` and per-pair time) with its periodic ``reset``; ``RoundSeries``
is the per-interval record behind the utilisation and queue metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from computepool.model.pool import Pool
from computepool.scheduler.pairs import PairState
from computepool.scheduler.state import ActiveSet, JobHistory


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
    #: Wall seconds of each policy call (``Policy.allocate``: the LP for the LP policies), in
    #: call order, beside the simulated time it was made at.
    policy_seconds: list[float] = field(default_factory=list)
    policy_at: list[float] = field(default_factory=list)
    #: Accelerator-seconds per flavor held by services (``ServingHook``), aligned with ``busy``.
    serving: list[np.ndarray] = field(default_factory=list)


@dataclass
class TimeCounters:
    """Time received since the last reset, beside each row's own ``ActiveSet.received``."""

    #: Seconds of job time per flavor since the last reset (Gavel's ``worker_time_so_far``).
    flavor_time: np.ndarray
    #: Pairs with a share in the allocation in force (space sharing), with their own counters.
    pairs: PairState
    reset_at: float = -math.inf
    #: Resets so far.
    resets: int = 0

    @classmethod
    def empty(cls, num_flavors: int) -> TimeCounters:
        return cls(np.zeros(num_flavors), PairState.empty(num_flavors))

    def reset(self, active: ActiveSet, now: float, start: float) -> None:
        """Gavel's reset: fold the period's shortfall into deficits, restart the counters at
        ``start`` seconds (half a round) per row, pair and flavor."""
        a, p = active, self.pairs
        if math.isfinite(self.reset_at):
            elapsed = now - self.reset_at
            a.deficit += a.share * elapsed - (a.received - start)
            p.deficit += p.share * elapsed - (p.received - start)
        a.received[:] = start
        p.received[:] = start
        self.flavor_time[:] = start * (len(a) + len(p))
        self.reset_at = now
        self.resets += 1

    def owed(self, active: ActiveSet, now: float, start: float) -> np.ndarray:
        """(n, F) time each row is owed now: its deficit at the last reset plus its share of
        the time since, less what it received since (the deficit alone is stale between
        resets: a row served all along stayed "owed", a row served nothing owed nothing)."""
        a = active
        if not math.isfinite(self.reset_at):
            return a.deficit
        return a.deficit + a.share * (now - self.reset_at) - (a.received - start)


@dataclass(frozen=True)
class Usage:
    """What ran in an interval: the rows, their flavors and accelerator-seconds charged."""

    rows: np.ndarray
    flavor: np.ndarray
    accel_seconds: np.ndarray


def run_ends(
    active: ActiveSet,
    history: JobHistory,
    run_rows: np.ndarray,
    now: float,
    ended: np.ndarray,
    ended_at: np.ndarray,
) -> np.ndarray:
    """End of the interval for each running row: ``now``, or when its job ended before."""
    end = np.full(len(run_rows), now)
    if len(ended):
        pos = np.full(len(active), -1, dtype=np.int64)
        pos[run_rows] = np.arange(len(run_rows))
        crow = history.row_of[ended]
        valid = (crow >= 0) & (pos[np.maximum(crow, 0)] >= 0)
        end[pos[crow[valid]]] = ended_at[valid]
    return end


def charge_usage(
    active: ActiveSet,
    history: JobHistory,
    counters: TimeCounters,
    pool: Pool,
    class_scale_factor: np.ndarray,
    job_class: np.ndarray,
    t0: float,
    now: float,
    ended: np.ndarray,
    ended_at: np.ndarray,
) -> Usage:
    """Charge ``[t0, now)`` to the rows running in it (gang size: ``class_scale_factor`` of
    each job's ``job_class``).

    A pair holds one device set: each of its two jobs is charged half of it, and the time run
    together goes to the pair's counters, not the rows' own."""
    a, h = active, history
    run_rows = np.nonzero(a.running >= 0)[0]
    end = run_ends(a, h, run_rows, now, ended, ended_at)
    ran = np.maximum(end - t0, 0.0)
    jobs = a.job[run_rows]
    flv = a.running[run_rows]
    sf = class_scale_factor[job_class[jobs]]
    shared = a.partner[run_rows] >= 0
    if shared.any():
        half = np.where(shared, 0.5, 1.0)
        acc = ran * sf * half
        alone = ~shared
        a.received[run_rows[alone], flv[alone]] += ran[alone]
        counters.pairs.add_time(jobs[shared], a.partner[run_rows[shared]], flv[shared], ran[shared])
        held = half * ran
    else:  # every row alone on its devices (the factor 1 above, without its arrays)
        acc = ran * sf
        a.received[run_rows, flv] += ran
        held = ran
    a.attained[run_rows] += acc
    counters.flavor_time += np.bincount(flv, weights=held, minlength=len(counters.flavor_time))
    h.accel_seconds[jobs] += acc
    h.cost_usd[jobs] += acc * pool.flavor_price[flv] / 3600.0
    kwh = acc * pool.flavor_power_kw[flv] / 3600.0
    h.energy_kwh[jobs] += kwh
    h.carbon_kg[jobs] += kwh * pool.flavor_carbon[flv] / 1000.0
    return Usage(run_rows, flv, acc)


def record_interval(
    series: RoundSeries,
    usage: Usage,
    active: ActiveSet,
    num_flavors: int,
    t0: float,
    now: float,
    serving_held: Callable[[], np.ndarray] | None,
) -> None:
    """Append ``[t0, now)`` to ``series`` (busy and service-held accelerator-seconds per flavor,
    queued and active jobs; ``serving_held`` gives what services hold) unless the interval is empty and nothing ran."""
    if now > t0 or len(usage.rows):
        series.t0.append(t0)
        series.t1.append(now)
        series.busy.append(
            np.bincount(usage.flavor, weights=usage.accel_seconds, minlength=num_flavors)
        )
        if serving_held is not None:
            series.serving.append(serving_held() * (now - t0))
        series.queued.append(int(np.count_nonzero(active.running < 0)))
        series.active.append(len(active))
