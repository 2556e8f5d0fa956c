"""Rent vs build: each tenant on its own cluster, one pool of the same size, and a smaller pool.

Given a workload with tenants (for Philly: the virtual clusters), a measurement window of
arrival times and one accelerator type:

(a) **silos**: each tenant gets a cluster sized by a stated rule: a quantile of its demand (the
    accelerators its jobs would hold at once if each started on arrival, time-weighted; default
    the 95th percentile, 1.0 = its true peak) or the cards it actually bought, in whole nodes;
(b) **pool**: one cluster with the same total cards, shared by every tenant;
(c) **smaller pool**: the fewest nodes whose average JCT is no worse than the silos' (times
    ``1 + jct_tolerance``), found by bisection over the pool size with the simulator.

Each is simulated with the shared scheduler (``computepool.sim.run.simulate``). JCT is measured
on the jobs that arrive in the window (earlier jobs warm the clusters up); utilisation is busy
accelerator-hours inside the window over cards x window; cost is ownership (all-in capex over
the lifetime) plus energy (busy cards at full power, idle cards at ``idle_power_fraction``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from computepool.model.accelerator import AcceleratorType
from computepool.model.pool import Node, Pool
from computepool.model.region import Region
from computepool.model.throughput import Throughputs
from computepool.model.workload import Workload
from computepool.policies.registry import get_policy
from computepool.sim.metrics import SimResult
from computepool.sim.run import SimConfig, simulate

HOUR = 3600.0


@dataclass(frozen=True)
class Economics:
    """What one card costs to own and run, per hour."""

    capex_per_card_usd: float
    lifetime_years: float
    #: Facility power of a busy card (IT power x PUE), kW.
    busy_kw: float
    idle_power_fraction: float
    electricity_usd_per_kwh: float

    def cost_usd(self, cards: int, hours: float, busy_hours: float) -> float:
        own = cards * hours * self.capex_per_card_usd / (self.lifetime_years * 8760.0)
        idle = max(cards * hours - busy_hours, 0.0)
        kwh = (busy_hours + idle * self.idle_power_fraction) * self.busy_kw
        return own + kwh * self.electricity_usd_per_kwh


@dataclass(frozen=True)
class StudyInput:
    workload: Workload
    #: Arrival-time window [t0, t1) (seconds, workload clock) whose jobs are measured.
    window: tuple[float, float]
    accelerator: AcceleratorType
    region: Region
    per_node: int
    economics: Economics
    throughputs: Throughputs
    policy: str = "fifo"
    round_seconds: float = 360.0
    jct_tolerance: float = 0.0
    jct_target_hours: float | None = None
    #: Silo sizing: each tenant's time-weighted demand quantile (1.0 = its true peak)...
    peak_quantile: float = 0.95
    #: ...unless the tenant is listed here with the cards it actually bought.
    silo_cards: dict[str, int] = field(default_factory=dict)
    max_search_steps: int = 12

    def sizing_rule(self) -> str:
        rule = (
            "its true peak"
            if self.peak_quantile >= 1.0
            else f"its {self.peak_quantile:.0%} demand quantile (time-weighted)"
        )
        if self.silo_cards:
            rule += f"; {len(self.silo_cards)} tenant(s) at the cards they bought"
        return "each tenant's silo holds " + rule


@dataclass(frozen=True)
class Arrangement:
    name: str
    cards: int
    avg_jct_hours: float
    p99_jct_hours: float
    mean_queueing_hours: float
    utilisation: float
    busy_hours: float
    cost_usd: float
    jobs: int
    jobs_completed: int

    @property
    def cost_per_useful_hour(self) -> float:
        return self.cost_usd / self.busy_hours if self.busy_hours > 0 else math.inf


@dataclass(frozen=True)
class TenantRow:
    name: str
    jobs: int
    work_hours: float
    #: The tenant's demand at the sizing quantile (its true peak at 1.0).
    peak: float
    cards: int
    utilisation: float
    avg_jct_hours: float
    #: The tenant's true peak (demand at quantile 1.0), for comparison with ``cards``.
    true_peak: float = math.nan
    #: Average JCT of this tenant's jobs in (b) the pool of the same cards, (c) the smaller pool.
    pool_jct_hours: float = math.nan
    smaller_jct_hours: float = math.nan
    #: Cost of the silo; and the tenant's share of (c)'s cost by its busy hours there.
    silo_cost_usd: float = math.nan
    smaller_cost_share_usd: float = math.nan


@dataclass(frozen=True)
class SilosResult:
    silos: Arrangement
    pool: Arrangement
    smaller: Arrangement | None
    tenants: tuple[TenantRow, ...]
    jct_target_hours: float
    #: (cards, average JCT hours) of every pool size tried, in order.
    search: tuple[tuple[int, float], ...]
    window_hours: float
    pooled_peak: float
    wall_seconds: float
    notes: tuple[str, ...] = field(default_factory=tuple)
    sizing_rule: str = ""


# ------------------------------------------------------------------------------ pieces


def durations(w: Workload, tp: Throughputs, accel: str) -> np.ndarray:
    """Seconds each job runs alone on ``accel`` (inf where it cannot)."""
    per_class = [tp.rate(c.job_type, c.scale_factor, accel) for c in w.classes]
    rate = np.asarray(per_class, dtype=float)[w.job_class]
    safe = np.where(rate > 0, rate, 1.0)
    return np.where(rate > 0, w.total_steps / safe, np.inf)


def peak_demand(arrival: np.ndarray, duration: np.ndarray, sf: np.ndarray, q: float = 1.0) -> float:
    """Peak accelerators held at once if every job started on arrival (time-weighted quantile)."""
    if len(arrival) == 0:
        return 0.0
    t = np.concatenate([arrival, arrival + duration])
    d = np.concatenate([sf, -sf]).astype(float)
    order = np.argsort(t, kind="stable")
    t, level = t[order], np.cumsum(d[order])
    if q >= 1.0:
        return float(level.max())
    span = np.diff(t)
    lv = level[:-1]
    keep = span > 0
    lv, span = lv[keep], span[keep]
    if len(lv) == 0:
        return float(level.max())
    o = np.argsort(lv)
    cum = np.cumsum(span[o]) / span.sum()
    return float(lv[o][np.searchsorted(cum, q)])


def subset(w: Workload, mask: np.ndarray, name: str = "") -> Workload:
    idx = np.nonzero(mask)[0]
    return Workload(
        arrival=w.arrival[idx],
        job_class=w.job_class[idx],
        total_steps=w.total_steps[idx],
        classes=w.classes,
        tenant=w.tenant[idx],
        tenants=w.tenants,
        weight=w.weight[idx],
        deadline=w.deadline[idx],
        data_profile=w.data_profile[idx],
        profiles=w.profiles,
        ids=None if w.ids is None else [w.ids[i] for i in idx],
        name=name or w.name,
    )


def make_pool(name: str, inp: StudyInput, nodes: int) -> Pool:
    a, r = inp.accelerator, inp.region
    return Pool(
        name,
        {a.name: a},
        {r.name: r},
        tuple(Node(f"{name}-{i}", r.name, a.name, inp.per_node) for i in range(nodes)),
    )


def window_busy_hours(res: SimResult, t0: float, t1: float) -> float:
    s = res.series
    if not s.t0:
        return 0.0
    a, b = np.asarray(s.t0), np.asarray(s.t1)
    busy = np.vstack(s.busy).sum(axis=1)
    overlap = np.clip(np.minimum(b, t1) - np.maximum(a, t0), 0.0, None)
    frac = np.where(b > a, overlap / np.where(b > a, b - a, 1.0), 0.0)
    return float((busy * frac).sum() / HOUR)


def simulate_nodes(inp: StudyInput, w: Workload, nodes: int, name: str) -> SimResult:
    t0, t1 = inp.window
    a, b = (int(i) for i in np.searchsorted(w.arrival, [t0, t1]))
    cfg = SimConfig(round_seconds=inp.round_seconds, window=(a, b) if b > a else None)
    return simulate(make_pool(name, inp, nodes), w, inp.throughputs, get_policy(inp.policy), cfg)


def _window_jct(res: SimResult) -> tuple[np.ndarray, np.ndarray]:
    sl = res.window_slice() if res.window is not None else slice(0, 0)
    jct = res.jct[sl]
    q = (res.first_start - res.arrival)[sl]
    return jct, q


def measure(name: str, inp: StudyInput, cards: int, results: list[SimResult]) -> Arrangement:
    t0, t1 = inp.window
    hours = (t1 - t0) / HOUR
    jcts, queues = zip(*(_window_jct(r) for r in results), strict=True)
    jct = np.concatenate(jcts) if jcts else np.zeros(0)
    q = np.concatenate(queues) if queues else np.zeros(0)
    done = ~np.isnan(jct)
    busy = sum(window_busy_hours(r, t0, t1) for r in results)
    j = jct[done] / HOUR
    return Arrangement(
        name=name,
        cards=cards,
        avg_jct_hours=float(j.mean()) if len(j) else math.nan,
        p99_jct_hours=float(np.percentile(j, 99)) if len(j) else math.nan,
        mean_queueing_hours=float(np.nanmean(q) / HOUR) if len(q) else math.nan,
        utilisation=busy / (cards * hours) if cards and hours > 0 else 0.0,
        busy_hours=busy,
        cost_usd=inp.economics.cost_usd(cards, hours, busy),
        jobs=int(len(jct)),
        jobs_completed=int(done.sum()),
    )


def nodes_for(cards: float, per_node: int) -> int:
    return max(1, math.ceil(cards / per_node - 1e-9))


# ------------------------------------------------------------------------------ the study


def run_study(inp: StudyInput, on_step: Callable[[str, float], None] | None = None) -> SilosResult:
    """(a) silos, (b) a pool of the same size, (c) the smallest pool meeting the JCT target."""
    wall0 = time.perf_counter()
    step = on_step or (lambda _s, _f: None)
    w = inp.workload
    dur = durations(w, inp.throughputs, inp.accelerator.name)
    sf = w.scale_factor.astype(float)
    t0, t1 = inp.window
    hours = (t1 - t0) / HOUR
    present = [k for k in range(len(w.tenants)) if np.any(w.tenant == k)]
    silo_results, rows, silo_nodes = [], [], 0
    for i, k in enumerate(present):
        mask = w.tenant == k
        peak = peak_demand(w.arrival[mask], dur[mask], sf[mask], inp.peak_quantile)
        true_peak = peak_demand(w.arrival[mask], dur[mask], sf[mask], 1.0)
        bought = inp.silo_cards.get(w.tenants[k])
        size = bought if bought is not None else peak
        nodes = nodes_for(max(size, sf[mask].max()), inp.per_node)
        res = simulate_nodes(inp, subset(w, mask, w.tenants[k]), nodes, f"silo-{w.tenants[k]}")
        silo_results.append(res)
        silo_nodes += nodes
        a = measure(w.tenants[k], inp, nodes * inp.per_node, [res])
        in_win = mask & (w.arrival >= t0) & (w.arrival < t1)
        work = float((sf[in_win] * dur[in_win]).sum() / HOUR)
        rows.append(
            TenantRow(
                w.tenants[k],
                int(in_win.sum()),
                work,
                peak,
                nodes * inp.per_node,
                a.utilisation,
                a.avg_jct_hours,
                true_peak=true_peak,
                silo_cost_usd=a.cost_usd,
            )
        )
        step(f"silo {w.tenants[k]}", (i + 1) / (len(present) + 3))
    silos = measure("silos", inp, silo_nodes * inp.per_node, silo_results)
    pooled = simulate_nodes(inp, w, silo_nodes, "pool")
    pool = measure("pool", inp, silo_nodes * inp.per_node, [pooled])
    step("pool, same cards", (len(present) + 1) / (len(present) + 3))
    target = inp.jct_target_hours or silos.avg_jct_hours * (1.0 + inp.jct_tolerance)
    in_win = (w.arrival >= t0) & (w.arrival < t1)
    avg_demand = float((sf[in_win] * dur[in_win]).sum() / HOUR / hours) if hours > 0 else 0.0
    lo = nodes_for(max(avg_demand, sf.max()), inp.per_node)
    smaller, search, notes, small_res = _bisect(
        inp, w, lo, silo_nodes, pool, target, step, len(present), pooled
    )
    rows = [
        _with_pool_outcomes(row, k, w, pooled, small_res, smaller, sum(r.work_hours for r in rows))
        for row, k in zip(rows, present, strict=True)
    ]
    return SilosResult(
        silos=silos,
        pool=pool,
        smaller=smaller,
        tenants=tuple(rows),
        sizing_rule=inp.sizing_rule(),
        jct_target_hours=target,
        search=tuple(search),
        window_hours=hours,
        pooled_peak=peak_demand(w.arrival, dur, sf, inp.peak_quantile),
        wall_seconds=time.perf_counter() - wall0,
        notes=tuple(notes),
    )


def tenant_jct_hours(res: SimResult, w: Workload, k: int) -> float:
    """Average JCT of tenant k's measured jobs in a simulation of the whole workload ``w``."""
    sl = res.window_slice() if res.window is not None else slice(0, 0)
    jct = res.jct[sl]
    mine = (w.tenant[sl] == k) & ~np.isnan(jct)
    return float(jct[mine].mean() / HOUR) if mine.any() else math.nan


def _with_pool_outcomes(
    row: TenantRow,
    k: int,
    w: Workload,
    pooled: SimResult,
    small: SimResult | None,
    smaller: Arrangement | None,
    total_work_hours: float,
) -> TenantRow:
    return dataclasses.replace(
        row,
        pool_jct_hours=tenant_jct_hours(pooled, w, k),
        smaller_jct_hours=tenant_jct_hours(small, w, k) if small is not None else math.nan,
        smaller_cost_share_usd=(
            smaller.cost_usd * row.work_hours / total_work_hours
            if smaller is not None and total_work_hours > 0
            else math.nan
        ),
    )


def _bisect(
    inp: StudyInput,
    w: Workload,
    lo: int,
    hi: int,
    at_hi: Arrangement,
    target: float,
    step: Callable[[str, float], None],
    n_tenants: int,
    hi_res: SimResult,
) -> tuple[Arrangement | None, list[tuple[int, float]], list[str], SimResult | None]:
    """Fewest nodes in [lo, hi] with average JCT <= target (JCT assumed monotone in size)."""
    search = [(at_hi.cards, at_hi.avg_jct_hours)]
    if not at_hi.avg_jct_hours <= target * (1 + 1e-9):
        return (
            None,
            search,
            [
                f"even the pool with the silos' {at_hi.cards:,} cards misses the "
                f"JCT target of {target:.2f} h"
            ],
            None,
        )
    best, best_res = at_hi, hi_res
    lo = min(lo, hi)
    steps = 0
    while lo < hi and steps < inp.max_search_steps:
        mid = (lo + hi) // 2
        res = simulate_nodes(inp, w, mid, "pool-smaller")
        a = measure("smaller pool", inp, mid * inp.per_node, [res])
        search.append((a.cards, a.avg_jct_hours))
        if a.avg_jct_hours <= target * (1 + 1e-9):
            hi, best, best_res = mid, a, res
        else:
            lo = mid + 1
        steps += 1
        step(f"pool of {mid} nodes", (n_tenants + 1 + min(steps / 8, 1.0)) / (n_tenants + 3))
    notes = []
    if lo < hi:
        notes.append(f"search stopped after {steps} steps; the answer is within {hi - lo} nodes")
    if best is at_hi:
        best = dataclasses.replace(at_hi, name="smaller pool")
    return best, search, notes, best_res
