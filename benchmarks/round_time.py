"""Live scheduler round time with 10,000 queued jobs on a pool of 10,000 nodes.

    python benchmarks/round_time.py [--nodes 10000] [--queued 10000] [--rounds 20] [--json OUT]

The live pool's own pieces: a growable ``Workload`` fed like the store feeds it, the quota
gate (two cohorts of tenants with nominal quotas and borrowing), the placement engine
(``--placement bestfit`` by default; ``slots`` for the minimal assigner), FIFO, and the
shared ``Scheduler``. The cluster is a stand-in that starts nothing (10,000
real processes do not fit a 2-core machine); it reports 1% of the running jobs finished
each round, so every steady round admits, gates, allocates and places again with the
queue still full. Times are wall-clock per ``Scheduler.step()``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np

from computepool.admission.quota import QuotaGate
from computepool.backends.engine_placer import LivePlacer
from computepool.backends.slots import SlotAssigner
from computepool.catalog.accelerators import load_accelerators
from computepool.catalog.throughputs import load_throughputs
from computepool.model.job import Job
from computepool.model.pool import Node, Pool
from computepool.model.region import Region
from computepool.model.tenant import FlavorQuota, Tenant
from computepool.model.workload import Workload
from computepool.policies.registry import get_policy
from computepool.scheduler.interfaces import Observation, RoundPlan
from computepool.scheduler.loop import Scheduler, SchedulerConfig

ACCELS = ("V100", "P100", "K80")


class ListSource:
    def __init__(self) -> None:
        self.pending: list[int] = []

    def arrivals(self, now: float) -> list[int]:
        out, self.pending = self.pending, []
        return out

    def next_arrival(self) -> float:
        return math.inf

    def exhausted(self) -> bool:
        return False


class FinishingCluster:
    """Starts nothing; reports ``fraction`` of the running jobs done at each observe."""

    def __init__(self, fraction: float, seed: int = 0) -> None:
        self.fraction, self.running = fraction, np.zeros(0, dtype=np.int64)
        self.rng = np.random.default_rng(seed)
        self.started = 0

    def observe(self, now: float) -> Observation:
        k = int(len(self.running) * self.fraction)
        if k == 0:
            return Observation(now=now)
        done = self.rng.choice(self.running, size=k, replace=False)
        self.running = np.setdiff1d(self.running, done)
        return Observation(now=now, completed=done, completed_at=np.full(k, now))

    def apply(self, plan: RoundPlan) -> None:
        gone = np.concatenate([plan.stop, plan.kill])
        if len(gone):
            self.running = np.setdiff1d(self.running, gone)
        self.running = np.concatenate([self.running, plan.start])
        self.started += len(plan.start)

    def next_event_time(self) -> float:
        return math.inf


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep_until(self, t: float) -> None:
        self.t = t


def make_pool(nodes: int, per_node: int = 8) -> Pool:
    acc = load_accelerators()
    regions = {r: Region(r, "CN", 0.08, 1.3, 550.0) for r in ("cn-east", "cn-north")}
    out = []
    for i in range(nodes):
        region = "cn-east" if i % 2 == 0 else "cn-north"
        a = ACCELS[i % len(ACCELS)]
        out.append(Node(f"n{i}", region, a, per_node, island=f"rack{i // 32}"))
    return Pool("bench", {a: acc[a] for a in ACCELS}, regions, tuple(out))


SHAPES = [(1, 1), (1, 2), (1, 4), (1, 8), (2, 8), (4, 8)]  # (workers, per worker)
PROBS = [0.25, 0.2, 0.2, 0.2, 0.1, 0.05]
MEAN_ACCELS = sum(w * per * p for (w, per), p in zip(SHAPES, PROBS, strict=True))


def make_jobs(n: int, rng: np.random.Generator, tenants: list[str]) -> list[Job]:
    shapes, probs = SHAPES, PROBS
    out = []
    for i in range(n):
        w, per = shapes[rng.choice(len(shapes), p=probs)]
        out.append(
            Job(
                id=str(i),
                tenant=tenants[i % len(tenants)],
                workers=w,
                accel_per_worker=per,
                accelerators=(ACCELS[rng.integers(len(ACCELS))],) if rng.random() < 0.5 else (),
                total_steps=3600.0,
                arrival=float(i) * 1e-3,
            )
        )
    return out


def run(nodes: int, queued: int, rounds: int, seed: int = 0, placement: str = "bestfit") -> dict:
    rng = np.random.default_rng(seed)
    pool = make_pool(nodes)
    capacity = int(pool.capacity.sum())
    tenants = [f"t{i}" for i in range(8)]
    share = capacity / len(tenants)
    quotas = {
        t: Tenant(
            t,
            weight=1.0 + (i % 3),
            cohort="east" if i < 4 else "west",
            quotas={"*": FlavorQuota(nominal=share / len(pool.flavors), borrowing_limit=share)},
        )
        for i, t in enumerate(tenants)
    }
    # enough jobs to fill the pool and leave `queued` waiting behind it
    running = capacity / MEAN_ACCELS
    jobs = make_jobs(int(queued + running * (1 + 0.01 * rounds) + 400), rng, tenants)
    workload = Workload.empty("bench")
    shapes: dict[int, tuple[int, int]] = {}
    source = ListSource()
    cluster = FinishingCluster(0.01, seed)
    tp = load_throughputs("gavel", accelerators=pool.accelerators, with_pairs=False)
    placer = (
        SlotAssigner(pool, shapes.__getitem__)
        if placement == "slots"
        else LivePlacer(pool, workload, tp, shapes.__getitem__, placement)
    )
    sched = Scheduler(
        pool,
        workload,
        tp,
        get_policy("fifo"),
        cluster,
        Clock(),
        source,
        SchedulerConfig(round_seconds=1.0),
        placer=placer,
        gate=QuotaGate(pool.flavors, quotas),
    )
    t0 = time.perf_counter()
    idx = workload.append(jobs)
    for k, j in zip(idx.tolist(), jobs, strict=True):
        shapes[k] = (j.workers, int(j.accel_per_worker))
    source.pending = idx.tolist()
    t_append = time.perf_counter() - t0
    times = []
    for r in range(rounds):
        sched.clock.sleep_until(float(r + 1))
        t0 = time.perf_counter()
        sched.step()
        times.append(time.perf_counter() - t0)
    a = sched.active
    waiting = int(np.count_nonzero(a.running < 0))
    busy = int(workload.scale_factor[a.job[a.running >= 0]].sum())
    steady = times[1:]
    return {
        "placement": placement,
        "nodes": nodes,
        "accelerators": capacity,
        "jobs": len(jobs),
        "queued_after": waiting,
        "running_after": int(np.count_nonzero(a.running >= 0)),
        "busy_accelerators": busy,
        "append_s": t_append,
        "first_round_s": times[0],
        "steady_p50_s": statistics.median(steady),
        "steady_max_s": max(steady),
        "started_total": cluster.started,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--queued", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--placement", default="bestfit", help="placement profile, or slots")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    res = run(args.nodes, args.queued, args.rounds, placement=args.placement)
    print(
        f"placement {res['placement']}: "
        f"{res['nodes']:,} nodes / {res['accelerators']:,} accelerators, {res['jobs']:,} jobs "
        f"({res['queued_after']:,} still queued, {res['running_after']:,} running on "
        f"{res['busy_accelerators']:,} accelerators)\n"
        f"first round (admit + gate + place everything): {res['first_round_s']:.3f} s\n"
        f"steady rounds (1% finish, refill): p50 {res['steady_p50_s']:.3f} s, "
        f"max {res['steady_max_s']:.3f} s"
    )
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
