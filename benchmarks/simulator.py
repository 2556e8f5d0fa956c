"""Simulator speed and memory: wall seconds, simulated rounds per second, peak RSS.

Each case runs in a fresh process so its peak RSS is its own.

    python benchmarks/simulator.py gavel            # 6,000 Gavel jobs at 5.6 jobs/h, las + las-agnostic
    python benchmarks/simulator.py philly           # 82,247 Philly jobs, fifo
    python benchmarks/simulator.py scale            # 100,000 accelerators, 1,000,000 jobs, fifo + las
    python benchmarks/simulator.py scale --jobs 100000 --policies fifo
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def _run(case: dict, queue: mp.Queue) -> None:
    from computepool.sim.run import SimConfig
    from computepool.sim.runner import load_inputs, run_policy

    t0 = time.perf_counter()
    inputs = load_inputs(case["pool"], case["workload"])
    load_s = time.perf_counter() - t0
    window = tuple(case["window"]) if case.get("window") else None
    res = run_policy(inputs, case["policy"], SimConfig(window=window))
    s = res.summary()
    queue.put(
        {
            **case,
            "load_seconds": round(load_s, 2),
            "wall_seconds": round(s["wall_seconds"], 2),
            "rounds": s["rounds"],
            "rounds_per_second": round(s["rounds_per_second"] or 0.0, 1),
            "policy_calls": s["policy_calls"],
            "jobs_completed": s["jobs_completed"],
            "avg_jct_hours": s["avg_jct_hours"],
            "utilization_overall": s["utilization_overall"],
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        }
    )


def run_case(case: dict) -> dict:
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    p = ctx.Process(target=_run, args=(case, q))
    p.start()
    out = q.get()
    p.join()
    return out


def cases(name: str, args: argparse.Namespace) -> list[dict]:
    if name == "gavel":
        wl = f"gavel:rate=5.6,jobs={args.jobs or 6000},seed=0"
        return [
            {
                "case": "gavel-6000",
                "pool": "gavel-36x3",
                "workload": wl,
                "policy": p,
                "window": None,
            }
            for p in args.policies or ["las", "las-agnostic"]
        ]
    if name == "philly":
        trace = SHARED / "philly" / "philly_jobs_pollux_sia.csv"
        if not trace.exists():
            sys.exit(f"missing {trace} (../shared/data/philly): cannot run the Philly case")
        return [
            {"case": "philly-82k", "pool": "philly", "workload": str(trace), "policy": p}
            for p in args.policies or ["fifo"]
        ]
    if name == "scale":
        # load is relative to the pool's H100-equivalent capacity (scale-100k: 56,100 H100-eq)
        n = args.jobs or 1_000_000
        wl = f"scale:jobs={n},accelerators=56100,load=0.85,types=generic,reference=H100,seed=0"
        return [
            {"case": f"scale-100k-{n}", "pool": "scale-100k", "workload": wl, "policy": p}
            for p in args.policies or ["fifo", "las"]
        ]
    raise SystemExit(f"unknown case {name!r}: gavel, philly or scale")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("case", choices=["gavel", "philly", "scale"])
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--policies", type=lambda s: s.split(","), default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    rows = []
    for c in cases(args.case, args):
        r = run_case(c)
        rows.append(r)
        print(
            f"{r['case']:>18} {r['policy']:>14}: wall {r['wall_seconds']:8.2f} s  "
            f"(+{r['load_seconds']:.1f} s load)  rounds {r['rounds']:>7,}  "
            f"{r['rounds_per_second']:>9,.1f} rounds/s  peak RSS {r['peak_rss_mib']:,.0f} MiB  "
            f"jobs {r['jobs_completed']:,}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
