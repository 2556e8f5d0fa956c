"""Admission + residency check for 10,000 queued jobs per round (goal: under 100 ms).

    python benchmarks/residency.py                    # 10,000 jobs, 2,000 distinct data profiles
    python benchmarks/residency.py --jobs 10000 --profiles 10000 --json out.json

On the ``automotive-demo`` pool (12 flavors in 4 jurisdictions) with the shipped rulebook and
approvals on record (datasets stored in their origin jurisdiction 90 % of the time), it times
the residency work of one scheduling round for ``--jobs`` jobs:

- admit: the jobs arrive at once into a fresh scheduler: every data profile's flavor mask is
  computed from nothing, each job is admitted or rejected with the rule that forbids it
  (audit record);
- then the jobs are queued and something changes; the round recomputes the masks the change
  can reach, rejects queued jobs left without a legal flavor and runs the legality filter:
  - approval, no job: an approval whose scope no queued job's data is in;
  - approval, one handler: consent for one of the 7 handlers' Chinese personal data;
  - approval, everyone: a standard contract for all Chinese personal data;
  - new year: the person counters reset, every queued job's mask is recomputed;
- steady: a round in which nothing changed: the legality filter over the queued jobs.

Each figure is the median of ``--repeat`` runs, wall-clock and CPU time of this process (the
second is steadier on a shared machine).
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


def timed(fn) -> tuple[float, float]:
    """(wall ms, CPU ms) of ``fn()``."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - w0) * 1000.0, (time.process_time() - c0) * 1000.0


def admit_round(args) -> tuple[tuple[float, float], int]:
    sched, _check, w = build(args.jobs, args.profiles, args.seed)
    jobs = np.arange(len(w), dtype=np.int64)
    out: list = []

    def run() -> None:
        sched._sync_checks(0.0)
        out.append(sched.admit(jobs))

    t = timed(run)
    admitted = out[0]
    sched.active.add(admitted)
    sched.history.ensure(len(w))
    sched.history.row_of[sched.active.job] = np.arange(len(sched.active))
    return t, len(jobs) - len(admitted)


def legality_filter(sched, w) -> None:
    a = sched.active
    masks = sched._profile_masks()
    new = np.argmax(masks[w.data_profile[a.job]], axis=1)  # some flavor per row, as a policy would
    on = np.nonzero(new >= 0)[0]
    legal = masks[w.data_profile[a.job[on]], new[on]]
    new[on[~legal]] = -1


def change_round(sched, w, change, now: float) -> tuple[float, float]:
    def run() -> None:
        change(sched.checks[0])
        if sched._sync_checks(now):
            sched._reject_stranded(now)
        legality_filter(sched, w)

    return timed(run)


def approval(kind: str, **scope):
    from computepool.admission.approvals import Approval

    return lambda check: check.add_approval(Approval(f"x{time.perf_counter_ns()}", kind, **scope))


CHANGES = {
    "approval, no job": lambda i: (approval("certification", handler="-"), 0.0),
    "approval, one handler": lambda i: (
        approval("consent", handler="maker-3", origin="CN", data_class="cn.pi"),
        0.0,
    ),
    "approval, everyone": lambda i: (approval("standard_contract", origin="CN"), 0.0),
    "new year": lambda i: ((lambda _c: None), (i + 1) * 366 * 86400.0),
}


def queued(args):
    sched, _check, w = build(args.jobs, args.profiles, args.seed)
    sched._sync_checks(0.0)
    admitted = sched.admit(np.arange(len(w), dtype=np.int64))
    sched.active.add(admitted)
    sched.history.row_of[sched.active.job] = np.arange(len(sched.active))
    return sched, w


def steady_round(sched, w) -> tuple[float, float]:
    def run() -> None:
        sched._sync_checks(sched.checks[0].now)
        legality_filter(sched, w)

    return timed(run)


def med(xs) -> tuple[float, float]:
    return (
        round(statistics.median(x[0] for x in xs), 2),
        round(statistics.median(x[1] for x in xs), 2),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--profiles", type=int, default=2_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    admit = [admit_round(args) for _ in range(args.repeat)]
    cases = {"admit 10,000 arrivals": med([a for a, _ in admit])}
    for name, make in CHANGES.items():
        sched, w = queued(args)
        runs = []
        for i in range(args.repeat):
            change, now = make(i)
            runs.append(change_round(sched, w, change, now))
        cases[name] = med(runs)
    sched, w = queued(args)
    cases["steady"] = med([steady_round(sched, w) for _ in range(args.repeat)])
    out = {
        "jobs": args.jobs,
        "profiles": len(w.profiles),
        "flavors": len(sched.pool.flavors),
        "rejected_at_admission": admit[0][1],
        "cases_ms": {k: {"wall": v[0], "cpu": v[1]} for k, v in cases.items()},
        "goal_ms": 100,
    }
    print(f"{args.jobs:,} jobs, {len(w.profiles):,} data profiles, {admit[0][1]:,} rejected")
    print(f"{'case':<24} {'wall ms':>9} {'CPU ms':>9}")
    for k, (wall, cpu) in cases.items():
        print(f"{k:<24} {wall:>9.2f} {cpu:>9.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
