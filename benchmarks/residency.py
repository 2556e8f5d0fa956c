"""Admission + residency check for 10,000 queued jobs per round (goal: under 100 ms).

    python benchmarks/residency.py                    # 10,000 jobs, 2,000 distinct data profiles
    python benchmarks/residency.py --jobs 10000 --profiles 10000 --json out.json

On the ``automotive-demo`` pool (12 flavors in 4 jurisdictions) with the shipped rulebook and
approvals on record (datasets stored in their origin jurisdiction 90 % of the time), it times
the residency work of one scheduling round for ``--jobs`` jobs:

- admit: the jobs arrive at once into a fresh scheduler: every data profile's flavor mask is
  computed from nothing (the rules judged for each profile x jurisdiction), each job is
  admitted or rejected with the rule that forbids it (audit record);
- recheck: the jobs are queued and an approval changes: every mask is recomputed, queued jobs
  left without a legal flavor are rejected, and the round's legality filter runs over the rest;
- steady: a round in which nothing changed: the legality filter over the queued jobs.

Each figure is the median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np


def build(jobs: int, profiles: int, seed: int):
    from computepool.admission.approvals import Approval, ApprovalBook
    from computepool.admission.residency import ResidencyCheck
    from computepool.catalog.pools import load_pool
    from computepool.catalog.throughputs import load_throughputs
    from computepool.model.job import Dataset, Job
    from computepool.model.workload import Workload
    from computepool.policies import get_policy
    from computepool.scheduler.loop import Scheduler
    from computepool.sim.cluster import SimClock, SimulatedCluster, WorkloadSource

    rng = np.random.default_rng(seed)
    pool = load_pool("automotive-demo")
    regions = sorted(pool.regions)

    def home_or_any(origin: str) -> str:
        home = [r for r in regions if pool.regions[r].jurisdiction == origin]
        pick = home if home and rng.random() < 0.9 else regions
        return pick[int(rng.integers(len(pick)))]

    classes = [("cn.important", "CN"), ("cn.pi", "CN"), ("cn.pi.sensitive", "CN"),
               ("cn.mapping", "CN"), ("eu.personal", "EU"), ("sg.personal", "SG"),
               ("general", "CN"), ("cn.exterior_media", "CN")]  # fmt: skip
    datasets = [
        Dataset(
            f"d{i}",
            *classes[i % len(classes)],
            home_or_any(classes[i % len(classes)][1]),
            float(rng.integers(1, 5000)),
            int(rng.integers(1, 200_000)),
            handler=f"maker-{i % 7}",
        )  # fmt: skip
        for i in range(max(profiles // 2, 8))
    ]
    profs = []
    for _ in range(profiles):
        k = int(rng.integers(1, 4))
        profs.append(tuple(datasets[int(j)] for j in rng.choice(len(datasets), k, replace=False)))
    job_list = [
        Job(
            str(i),
            workers=int(rng.choice([1, 8, 16])),
            total_steps=3600.0,
            datasets=profs[int(rng.integers(profiles))],
        )  # fmt: skip
        for i in range(jobs)
    ]
    w = Workload.from_jobs(job_list)
    approvals = ApprovalBook(
        (
            Approval("consent", "consent", origin="CN"),
            Approval("pipia", "pipia", origin="CN"),
            Approval("scc", "eu_scc", to=("SG",)),
            Approval("sg", "sg_transfer_contract", to=("CN",), expires=86400.0),
        )
    )
    check = ResidencyCheck(pool=pool, approvals=approvals)
    tp = load_throughputs("gavel", accelerators=pool.accelerators)
    sched = Scheduler(
        pool, w, tp, get_policy("fifo"), SimulatedCluster(w, np.zeros((1, 1))), SimClock(0.0),
        WorkloadSource(w), checks=(check,),
    )  # fmt: skip
    return sched, check, w


def admit_round(args) -> tuple[float, int]:
    sched, _check, w = build(args.jobs, args.profiles, args.seed)
    jobs = np.arange(len(w), dtype=np.int64)
    t0 = time.perf_counter()
    sched._sync_checks(0.0)
    admitted = sched.admit(jobs)
    ms = (time.perf_counter() - t0) * 1000.0
    sched.active.add(admitted)
    sched.history.ensure(len(w))
    sched.history.row_of[sched.active.job] = np.arange(len(sched.active))
    return ms, len(jobs) - len(admitted)


def legality_filter(sched, w) -> None:
    a = sched.active
    masks = sched._profile_masks()
    new = np.argmax(masks[w.data_profile[a.job]], axis=1)  # some flavor per row, as a policy would
    on = np.nonzero(new >= 0)[0]
    legal = masks[w.data_profile[a.job[on]], new[on]]
    new[on[~legal]] = -1


def recheck_round(sched, w) -> float:
    from computepool.admission.approvals import Approval

    t0 = time.perf_counter()
    sched.checks[0].add_approval(
        Approval(f"x{time.perf_counter_ns()}", "certification", handler="-")
    )
    if sched._sync_checks(0.0):
        sched._reject_stranded(0.0)
    legality_filter(sched, w)
    return (time.perf_counter() - t0) * 1000.0


def steady_round(sched, w) -> float:
    t0 = time.perf_counter()
    sched._sync_checks(0.0)
    legality_filter(sched, w)
    return (time.perf_counter() - t0) * 1000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--profiles", type=int, default=2_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    admit = [admit_round(args) for _ in range(args.repeat)]
    sched, _check, w = build(args.jobs, args.profiles, args.seed)
    sched._sync_checks(0.0)
    admitted = sched.admit(np.arange(len(w), dtype=np.int64))
    sched.active.add(admitted)
    sched.history.row_of[sched.active.job] = np.arange(len(sched.active))
    recheck = [recheck_round(sched, w) for _ in range(args.repeat)]
    steady = [steady_round(sched, w) for _ in range(args.repeat)]
    out = {
        "jobs": args.jobs,
        "profiles": len(w.profiles),
        "flavors": len(sched.pool.flavors),
        "rejected_at_admission": admit[0][1],
        "admit_ms": round(statistics.median(a for a, _ in admit), 1),
        "recheck_ms": round(statistics.median(recheck), 1),
        "steady_ms": round(statistics.median(steady), 2),
        "goal_ms": 100,
    }
    print(
        f"{'jobs':>8} {'profiles':>9} {'rejected':>9} {'admit ms':>9} {'recheck ms':>11} {'steady ms':>10}"
    )
    print(
        f"{out['jobs']:>8,} {out['profiles']:>9,} {out['rejected_at_admission']:>9,} "
        f"{out['admit_ms']:>9.1f} {out['recheck_ms']:>11.1f} {out['steady_ms']:>10.2f}"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
