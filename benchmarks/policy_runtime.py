"""Figure set 4: policy computation time vs number of active jobs and flavors.

Jobs are single-GPU, types drawn uniformly from Gavel's table (``simulation_throughputs.json``,
shipped as the ``gavel`` throughputs); flavors beyond V100/P100/K80 are copies of those three with
a random speed factor in [0.5, 1.5] (other regions / SKUs). Capacity 36 accelerators per flavor.
Times are the median of ``--reps`` calls of ``policy.allocate`` (LP build + HiGHS + unpacking),
after one warm-up call.

Two cases for ``las``: ``grouped`` (jobs share classes, as in every Gavel workload: the LP has
one row per class) and ``distinct`` (every job has its own weight, so no two rows can share an
LP row: the worst case, n rows). Anchor (Gavel, cvxpy+ECOS, 36:36:36, same machine class):
0.0067 s at 256 jobs, 0.0362 s at 2,048, 0.220 s at 10,240.

    python -m benchmarks.policy_runtime [--jobs 256 2048 10000] [--flavors 3 12 30]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track

from benchmarks.gavel_runs import table, write_json
from computepool.catalog.throughputs import load_throughputs
from computepool.policies import get_policy
from computepool.policies.base import PolicyInput

GAVEL_ANCHOR_S = {256: 0.0067, 2048: 0.0362, 10240: 0.220}


def make_input(n: int, F: int, distinct: bool, seed: int = 0) -> PolicyInput:
    rng = np.random.default_rng(seed)
    tp = load_throughputs("gavel")
    types = sorted({jt for jt, sf in tp.measured if sf == 1})
    base = tp.class_matrix([(t, 1) for t in types], ["V100", "P100", "K80"])
    cols = [k % 3 for k in range(F)]
    factor = np.ones(F)
    factor[3:] = rng.uniform(0.5, 1.5, F - 3)
    rates = base[:, cols] * factor[None, :]
    cls = rng.integers(0, len(types), n)
    weight = rng.uniform(0.5, 2.0, n) if distinct else np.ones(n)
    return PolicyInput(
        now=1e5,
        job=np.arange(n),
        scale_factor=np.ones(n, dtype=np.int64),
        weight=weight,
        arrival=rng.uniform(0, 1e5, n),
        attained=np.zeros(n),
        steps_done=np.zeros(n),
        steps_total=rng.uniform(1e4, 1e7, n),
        running=np.full(n, -1, dtype=np.int64),
        deadline=np.full(n, np.nan),
        tenant=np.zeros(n, dtype=np.int64),
        job_class=cls,
        job_mask_index=np.zeros(n, dtype=np.int64),
        class_throughput=rates,
        feasible_masks=np.ones((1, F), dtype=bool),
        capacity=np.full(F, 36, dtype=np.int64),
        price=np.ones(F),
    )


def time_policy(name: str, inp: PolicyInput, reps: int) -> float:
    pol = get_policy(name)
    pol.allocate(inp)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        pol.allocate(inp)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, nargs="+", default=[256, 2048, 10000])
    ap.add_argument("--flavors", type=int, nargs="+", default=[3, 12, 30])
    ap.add_argument("--policies", nargs="+", default=["las:grouped", "las:distinct"])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/policy_runtime.json"))
    args = ap.parse_args()
    cases = [(p, n, F) for p in args.policies for n in args.jobs for F in args.flavors]
    results = []
    for spec, n, F in track(cases, description="policy runtime"):
        name, _, mode = spec.partition(":")
        inp = make_input(n, F, distinct=(mode == "distinct"))
        s = time_policy(name, inp, args.reps)
        results.append({"policy": spec, "jobs": n, "flavors": F, "seconds": s})
    write_json(results, args.out)
    rows = [
        [
            r["policy"],
            str(r["jobs"]),
            str(r["flavors"]),
            f"{r['seconds']:.4f}",
            f"{GAVEL_ANCHOR_S[r['jobs']]:.4f}"
            if r["flavors"] == 3 and r["jobs"] in GAVEL_ANCHOR_S
            else "-",
        ]
        for r in results
    ]
    Console().print(
        table("policy computation time (s)", ["policy", "jobs", "flavors", "ours", "Gavel"], rows)
    )


if __name__ == "__main__":
    main()
