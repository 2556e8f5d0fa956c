"""``simulate``: run a workload on a pool under a policy with the shared Scheduler."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from computepool.admission.feasibility import class_feasibility
from computepool.admission.quota import QuotaGate
from computepool.model.pool import Pool
from computepool.model.tenant import Tenant
from computepool.model.throughput import Throughputs
from computepool.model.workload import Workload
from computepool.policies.base import Policy
from computepool.scheduler.loop import COMPLETED, Scheduler, SchedulerConfig
from computepool.scheduler.pairs import class_pair_rates
from computepool.sim.budgets import BudgetWatch
from computepool.sim.cluster import SimClock, SimulatedCluster, WorkloadSource
from computepool.sim.loop import SimLoop
from computepool.sim.metrics import SimResult, contention_per_job, isolated_seconds

if TYPE_CHECKING:
    from computepool.serving.service import ServingWorkload


@dataclass(frozen=True)
class SimConfig:
    round_seconds: float = 360.0
    restart_penalty_s: float = 0.0
    min_reset_seconds: float = 1920.0
    #: Measure JCT on jobs [a, b) in arrival order and stop once they are all done.
    window: tuple[int, int] | None = None
    #: Stop at this simulated time (seconds) even if work remains.
    until: float = float("inf")
    #: Time-shared policies: recompute the allocation at every arrival/completion instead of
    #: only together with a counter reset (``SchedulerConfig.recompute_on_change``).
    recompute_on_change: bool = False
    #: The round mechanism's starvation guard (``SchedulerConfig.starvation_rounds``).
    starvation_rounds: float = 2.0
    #: ``SchedulerConfig.gavel_admission`` (True: Gavel's simulator: new jobs wait for an
    #: allocation that includes them; the second reset is not held back).
    gavel_admission: bool = False
    #: Placement policy binding jobs to node devices (``computepool.placement``); None places
    #: by count per flavor only.
    placement: str | None = None


def simulate(
    pool: Pool,
    workload: Workload,
    throughputs: Throughputs,
    policy: Policy,
    config: SimConfig | None = None,
    checks: tuple = (),
    on_progress: Callable[[float], None] | None = None,
    services: ServingWorkload | None = None,
    tenants: Mapping[str, Tenant] | None = None,
    on_round: Callable[[Scheduler], None] | None = None,
) -> SimResult:
    """Run ``workload`` on ``pool``; with ``services``, LLM services share the pool (their
    autoscaler runs every ``services.config.interval_s``; training keeps its own rounds);
    with ``tenants``, their quotas, cohorts and budgets gate every round through the live
    pool's ``QuotaGate`` (a tenant over budget starts nothing new; its running jobs finish).
    ``on_round`` sees the Scheduler after each round (per-job traces, e.g. a job-by-job
    comparison with another simulator)."""
    cfg = config or SimConfig()
    wall0 = time.perf_counter()
    start = float(workload.arrival[0]) if len(workload) else 0.0
    serving = None
    round_s = cfg.round_seconds
    if services is not None:
        from computepool.serving.controller import ServingController

        start = min(start, 0.0)
        serving = ServingController(pool, services, workload.preemptible, start)
    clock = SimClock(start)
    sched_cfg = SchedulerConfig(
        round_s,
        cfg.min_reset_seconds,
        recompute_on_change=cfg.recompute_on_change,
        starvation_rounds=cfg.starvation_rounds,
        gavel_admission=cfg.gavel_admission,
    )
    source = WorkloadSource(workload)
    feas = class_feasibility(workload.classes, pool, throughputs)
    rates = feas.rates
    pair_rates = None
    if getattr(policy, "space_sharing", False):
        accels = [f.accelerator for f in pool.flavors]
        keys = [c.key for c in workload.classes]
        pair_rates = class_pair_rates(keys, accels, throughputs, rates)
    cluster = SimulatedCluster(workload, rates, cfg.restart_penalty_s, start, pair_rates)
    placer = None
    if cfg.placement:
        from computepool.placement.placer import PoolPlacer

        placer = PoolPlacer(pool, workload, throughputs, cfg.placement)
    gate = budgets = None
    if tenants:
        gate = QuotaGate(pool.flavors, tenants)
        budgets = BudgetWatch(workload, tenants, gate)
    sched = Scheduler(
        pool,
        workload,
        throughputs,
        policy,
        cluster=cluster,
        clock=clock,
        source=source,
        config=sched_cfg,
        checks=checks,
        feasibility=feas,
        pair_rates=pair_rates,
        serving=serving,
        placer=placer,
        gate=gate,
    )

    n = len(workload)
    win = cfg.window
    done_in_window = None
    if win is not None:
        a, b = max(0, win[0]), min(win[1], n)
        total_window = b - a

        def done_in_window(s: Scheduler) -> bool:
            return int(np.count_nonzero(s.history.state[a:b])) >= total_window

    horizon = services.horizon_s if services is not None else 0.0

    def after_round(s: Scheduler) -> None:
        if on_round is not None:
            on_round(s)
        if placer is not None:
            placer.record(clock.now())
        if budgets is not None:
            budgets.check(s.history)
        if on_progress is not None:
            done = float(np.count_nonzero(s.history.state[:n] == COMPLETED)) / max(n, 1)
            if horizon > 0:
                done = (
                    min(done, min(s.clock.now() / horizon, 1.0)) if n else s.clock.now() / horizon
                )
            on_progress(min(done, 1.0))

    loop = SimLoop(sched, cluster, clock, source)
    loop.run(until=cfg.until, on_round=after_round, stop=done_in_window)
    wall = time.perf_counter() - wall0
    h = sched.history
    h.ensure(n)
    sf = workload.scale_factor
    contention = contention_per_job(workload.arrival, h.end[:n], sched.series)
    iso = isolated_seconds(
        workload.total_steps, workload.job_class, rates, pool.capacity, sf, contention
    )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    extra: dict = {}
    for check in checks:
        summary = getattr(check, "summary", None)
        if summary is not None:
            extra.update(summary(workload))
    if placer is not None:
        extra.update(placer.series.summary())
    if serving is not None:
        from computepool.serving.results import service_rows, serving_summary

        ser = sched.series
        busy = np.vstack(ser.busy) if ser.busy else np.zeros((0, len(pool.flavors)))
        extra["services"] = service_rows(serving)
        extra["serving"] = serving_summary(serving, busy, np.asarray(ser.t0), np.asarray(ser.t1))
    res = SimResult(
        pool=pool.name,
        policy=policy.name,
        workload=workload.name,
        flavors=[f.name for f in pool.flavors],
        capacity=pool.capacity.copy(),
        arrival=workload.arrival,
        first_start=h.first_start[:n],
        end=h.end[:n],
        accel_seconds=h.accel_seconds[:n],
        cost_usd=h.cost_usd[:n],
        energy_kwh=h.energy_kwh[:n],
        carbon_kg=h.carbon_kg[:n],
        preemptions=h.preemptions[:n],
        isolated_seconds=iso,
        series=sched.series,
        rejected=sched.rejections,
        window=win,
        wall_seconds=wall,
        peak_rss_mib=rss,
        config={
            "round_seconds": cfg.round_seconds,
            "restart_penalty_s": cfg.restart_penalty_s,
            "min_reset_seconds": cfg.min_reset_seconds,
            "recompute_on_change": cfg.recompute_on_change,
            "starvation_rounds": cfg.starvation_rounds,
            "placement": cfg.placement,
        },
        extra=extra,
    )
    if serving is not None:
        res.serving = serving
    return res
