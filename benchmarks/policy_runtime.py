"""Figure set 4: policy computation time vs number of active jobs and flavors.

Jobs are single-GPU, types drawn uniformly from Gavel's table (``simulation_throughputs.json``,
shipped as the ``gavel`` throughputs); flavors beyond V100/P100/K80 are copies of those three with
a random speed factor in [0.5, 1.5] (other regions / SKUs). Capacity 36 accelerators per flavor.
Times are the median of ``--reps`` calls of ``policy.allocate`` (LP build + HiGHS + unpacking),
after one warm-up call.

Cases (``policy:mode``):

* ``grouped``: jobs share classes, as in every Gavel workload (one LP row per class);
* ``distinct``: every job has its own weight (U[0.5, 2]); ``las`` aggregates rows that differ
  only in weight with a certificate of exactness (``max_min.weighted_aggregate``);
* ``unique``: every job also has its own speeds (each rate times U[0.8, 1.2]): no two rows can
  share an LP row, the true worst case; ``las-pop8`` / ``las-pop16`` solve it with POP.

Each row reports the objective (smallest normalised throughput) against the exact optimum of the
per-row LP (``gap``; solved separately, not timed) and POP's figure of merit, the mean over jobs
of effective throughput / exact (``mean ratio``). ``las-packed`` (space sharing) runs on Gavel's
single-GPU pair table; its partner-class LP is exact for the job-pair formulation (checked
against that formulation on small cases in tests/policies/test_packed.py). ``--cluster``
sets accelerators per flavor (36, or 512 as in POP's 2,048-job experiment with ``num_jobs / 4``
per type). Anchors (Gavel, cvxpy+ECOS, 36:36:36, same machine class): LAS 0.0067 s at 256 jobs,
0.0362 s at 2,048, 0.220 s at 10,240; LAS with space sharing 13.8 s at 512 jobs, 279 s at
1,024 (9.8 GB), 2,048 out of memory; POP log (MOSEK, 512:512:512, 2,048 jobs): exact 285.6 s,
POP-8 12.6 s.

    python -m benchmarks.policy_runtime [--jobs 256 2048 10000] [--flavors 3 12 30]
    python -m benchmarks.policy_runtime --policies las-packed:grouped las-packed:distinct \
        --jobs 256 2048 --flavors 3 --cluster 512
"""

from __future__ import annotations

import argparse
import resource
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
from computepool.policies.max_min import max_min_coefficients
from computepool.policies.shares import max_min_lp
from computepool.scheduler.pairs import class_pair_rates

GAVEL_ANCHOR_S = {256: 0.0067, 2048: 0.0362, 10240: 0.220}


def make_input(n: int, F: int, mode: str, seed: int = 0, per_flavor: int = 36) -> PolicyInput:
    rng = np.random.default_rng(seed)
    tp = load_throughputs("gavel")
    types = sorted({jt for jt, sf in tp.measured if sf == 1})
    keys = [(t, 1) for t in types]
    base = tp.class_matrix(keys, ["V100", "P100", "K80"])
    cols = [k % 3 for k in range(F)]
    factor = np.ones(F)
    factor[3:] = rng.uniform(0.5, 1.5, F - 3)
    rates = base[:, cols] * factor[None, :]
    pair = class_pair_rates(keys, ["V100", "P100", "K80"], tp, base)[:, :, cols] * factor
    cls = rng.integers(0, len(types), n)
    weight = rng.uniform(0.5, 2.0, n) if mode in ("distinct", "unique") else np.ones(n)
    job_class = cls
    extras = {"pair_rates": pair}
    if mode == "unique":  # every job its own class: its type's speeds times U[0.8, 1.2]
        rates = rates[cls] * rng.uniform(0.8, 1.2, (n, F))
        job_class = np.arange(n)
        extras = {}  # no pair table per job (it would be n x n x F)
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
        job_class=job_class,
        job_mask_index=np.zeros(n, dtype=np.int64),
        class_throughput=rates,
        feasible_masks=np.ones((1, F), dtype=bool),
        capacity=np.full(F, per_flavor, dtype=np.int64),
        price=np.ones(F),
        extras=extras,
    )


#: name in this benchmark -> (registry name, parameters)
POLICIES = {
    "las": ("las", {}),
    "las-pop8": ("las", {"partitions": 8}),
    "las-pop16": ("las", {"partitions": 16}),
    "las-packed": ("las-packed", {}),
    "las-packed-pop8": ("las-packed", {"partitions": 8}),
}


def time_policy(name: str, inp: PolicyInput, reps: int) -> tuple[float, object]:
    reg, params = POLICIES.get(name, (name, {}))
    pol = get_policy(reg, **params)
    alloc = pol.allocate(inp)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        alloc = pol.allocate(inp)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), alloc


def normalised(inp: PolicyInput, alloc) -> np.ndarray:
    """Each row's normalised, weighted effective throughput (pairs at their pair rates)."""
    coef = max_min_coefficients(inp, True, inp.weight)
    thr = (coef * alloc.dense(inp.n, inp.num_flavors)).sum(axis=1)
    p = alloc.pairs
    if p is not None and len(p):
        norm = coef.max(axis=1) / np.maximum(inp.throughput.max(axis=1), 1e-300)
        pr = inp.extras["pair_rates"]
        ca, cb = inp.job_class[p.a], inp.job_class[p.b]
        np.add.at(thr, p.a, p.share * pr[ca, cb, p.flavor] * norm[p.a])
        np.add.at(thr, p.b, p.share * pr[cb, ca, p.flavor] * norm[p.b])
    return thr


def exact_packed(inp: PolicyInput) -> np.ndarray:
    """Normalised throughputs of the exact (unpartitioned) space-sharing optimum."""
    return normalised(inp, get_policy("las-packed").allocate(inp))


def exact_las(inp: PolicyInput) -> np.ndarray | None:
    """Normalised throughputs of the exact per-row LAS optimum (one LP row per job)."""
    if inp.n * inp.num_flavors > 400_000:
        return None
    coef = max_min_coefficients(inp, True, inp.weight)
    res = max_min_lp(coef, np.ones(inp.n, dtype=np.int64), inp.scale_factor, inp.capacity)
    return (coef * res.share).sum(axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, nargs="+", default=[256, 2048, 10000])
    ap.add_argument("--flavors", type=int, nargs="+", default=[3, 12, 30])
    ap.add_argument(
        "--policies",
        nargs="+",
        default=[
            "las:grouped",
            "las:distinct",
            "las:unique",
            "las-pop8:unique",
            "las-pop16:unique",
        ],
    )
    ap.add_argument("--cluster", type=int, default=36, help="accelerators per flavor")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/policy_runtime.json"))
    args = ap.parse_args()
    cases = [(p, n, F) for p in args.policies for n in args.jobs for F in args.flavors]
    results = []
    exact_cache: dict[tuple, np.ndarray | None] = {}
    for spec, n, F in track(cases, description="policy runtime"):
        name, _, mode = spec.partition(":")
        inp = make_input(n, F, mode, per_flavor=args.cluster)
        s, alloc = time_policy(name, inp, args.reps)
        thr = normalised(inp, alloc)
        row = {"policy": spec, "jobs": n, "flavors": F, "cluster": args.cluster, "seconds": s}
        row["objective"] = float(thr.min())
        key = (name.startswith("las-packed"), mode, n, F, args.cluster)
        if key not in exact_cache:
            exact_cache[key] = exact_packed(inp) if key[0] else exact_las(inp)
        ex = exact_cache[key]
        if ex is not None:
            row["gap"] = float(1.0 - thr.min() / ex.min())
            row["mean_ratio"] = float(np.mean(thr / np.maximum(ex, 1e-300)))
        row["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        results.append(row)
    write_json(results, args.out)
    rows = [
        [
            r["policy"],
            str(r["jobs"]),
            str(r["flavors"]),
            f"{r['seconds']:.4f}",
            f"{r['gap']:+.2%}" if "gap" in r else "-",
            f"{r['mean_ratio']:.4f}" if "mean_ratio" in r else "-",
            f"{r['peak_rss_mib']:,.0f}",
            f"{GAVEL_ANCHOR_S[r['jobs']]:.4f}"
            if r["flavors"] == 3 and r["jobs"] in GAVEL_ANCHOR_S
            else "-",
        ]
        for r in results
    ]
    Console().print(
        table(
            "policy computation time (s)",
            ["policy", "jobs", "flavors", "ours", "gap", "mean ratio", "peak RSS MiB", "Gavel"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
