"""Gavel's continuous-arrival figures (Fig. 8 single-GPU, Fig. 9 multi-GPU) on 36:36:36.

For every (rate, seed, policy): simulate the exact Gavel trace (``gavel:rate=R,jobs=N,
multi_gpu=M,seed=S``), measure jobs 4000-4999, and print average JCT and mean rho per rate
(mean over seeds) beside Gavel's published seed-0 value. Used by ``gavel_fig8.py`` and
``gavel_fig9.py``.

``N`` defaults to 25,000 so that arrivals never stop before job 4999 is done: Gavel's simulator
keeps generating jobs until then (its agnostic LAS at 5.6 jobs/h runs 2,214 simulated hours, i.e.
about 12,400 arrivals). With ``jobs=6000`` arrivals stop at ~1,070 h and the window's tail runs
on an emptying cluster; each result says whether that happened (``arrivals_ran_dry``).

rho is Gavel's: each job's JCT over its JCT in a separate ``isolated``-policy run of the same
workload (one per rate and seed, run alongside), averaged over the window.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from rich.console import Console

from benchmarks.gavel_runs import (
    GAVEL_NAME,
    Run,
    anchors,
    default_workers,
    isolated_rho,
    run_all,
    table,
    write_json,
)


def _mean(rows: list[dict], key: str, fmt: str) -> str:
    vals = [x[key] for x in rows if x.get(key) is not None]
    return fmt.format(float(np.mean(vals))) if vals else "-"


def main(multi_gpu: bool, default_rates: list[float], trace_prefix: str, name: str) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rates", type=float, nargs="+", default=default_rates)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--policies", nargs="+", default=["las-agnostic", "las", "fifo", "ftf"])
    ap.add_argument("--jobs", type=int, default=25000)
    ap.add_argument("--window", default="4000:5000")
    ap.add_argument("--workers", type=int, default=default_workers())
    ap.add_argument("--recompute-on-change", action="store_true")
    ap.add_argument(
        "--starvation-rounds",
        type=float,
        default=float("inf"),
        help="default inf: Gavel's order (Gavel's own runs show no starvation to guard against)",
    )
    ap.add_argument(
        "--gavel-admission",
        action="store_true",
        help="Gavel's simulator: a new job waits for an allocation that includes it (ftf needs it)",
    )
    ap.add_argument("--out", type=Path, default=Path(f"benchmarks/results/{name}.json"))
    args = ap.parse_args()
    a, b = (int(x) for x in args.window.split(":"))
    mg = "true" if multi_gpu else "false"
    runs = [
        Run(
            p,
            f"gavel:rate={r},jobs={args.jobs},multi_gpu={mg},seed={s}",
            (a, b),
            recompute_on_change=args.recompute_on_change,
            starvation_rounds=args.starvation_rounds,
            gavel_admission=args.gavel_admission,
        )
        for r in args.rates
        for s in args.seeds
        for p in [*args.policies, "isolated"]
    ]
    results = run_all(runs, args.workers, name)
    isolated_rho(results)
    write_json(results, args.out)
    jct = anchors("avg_jct_hours", trace_prefix)
    rho = anchors("mean_ftf_rho", trace_prefix)
    rows = []
    for r in args.rates:
        for p in args.policies:
            mine = [x for x in results if x["policy"] == p and f"rate={r}," in x["workload"]]
            seed0 = [x for x in mine if x["workload"].endswith("seed=0")]
            g = GAVEL_NAME.get(p, "")
            rows.append(
                [
                    f"{r}",
                    p,
                    f"{np.mean([x['avg_jct_hours'] for x in mine]):.2f}",
                    f"{seed0[0]['avg_jct_hours']:.2f}" if seed0 else "-",
                    f"{jct[(g, r)]:.2f}" if (g, r) in jct else "-",
                    _mean(mine, "rho_isolated", "{:.3f}"),
                    f"{rho[(g, r)]:.2f}" if (g, r) in rho else "-",
                    f"{np.mean([x['wall_seconds'] for x in mine]):.1f}",
                    "yes" if any(x["arrivals_ran_dry"] for x in mine) else "no",
                ]
            )
    Console().print(
        table(
            f"{name}: avg JCT (h) of jobs {a}-{b - 1}, mean over seeds {args.seeds}",
            [
                "rate",
                "policy",
                "avg JCT",
                "seed 0",
                "Gavel seed 0",
                "rho (isolated)",
                "Gavel rho",
                "wall s",
                "ran dry",
            ],
            rows,
        )
    )
