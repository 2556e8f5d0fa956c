"""The FGD (ATC'23) packing sweep: every openb trace x policy x seed, beside the paper's numbers.

    python benchmarks/fgd_sweep.py                  # 8 traces x 10 seeds x all policies
    python benchmarks/fgd_sweep.py --traces default --seeds 42-43 --policies fgd,bestfit

Reads ``../shared/data/alibaba-openb-v2023/csv`` and ``../shared/data/fgd/expected_results``
relative to the repository root (``--data`` to change); exits with a message when absent.
Prints the Markdown tables used in BENCHMARKS.md (``--json F`` also writes every run's figures;
``benchmarks/results/fgd_sweep.json`` is the run behind BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from computepool.cli.pack_cmd import parse_seeds
from computepool.placement.openb import read_nodes, read_pods
from computepool.placement.pack import run_pack
from computepool.placement.profiles import profile_names

ROOT = Path(__file__).resolve().parents[1]
TRACES = [
    "default",
    "cpu050",
    "cpu100",
    "cpu200",
    "cpu250",
    "gpushare40",
    "gpushare60",
    "gpushare80",
    "gpushare100",
]

PAPER = {
    "01-Random": "random",
    "02-DotProd": "dotprod",
    "03-GpuClustering": "clustering",
    "04-GpuPacking": "packing",
    "05-BestFit": "bestfit",
    "06-FGD": "fgd",
}
FRAG_AT = (50, 70, 90)
POLICIES = ("random", "dotprod", "clustering", "packing", "bestfit", "fgd", "fsgd")


def paper_numbers(expected: Path) -> dict:
    """Mean over seeds of the paper's allocation @130% and fragmentation @50/70/90%."""
    out: dict = {"alloc": defaultdict(list), "frag": defaultdict(list)}
    for kind, name in (
        ("alloc", "analysis_allo_discrete.csv"),
        ("frag", "analysis_frag_discrete.csv"),
    ):
        with (expected / name).open() as f:
            for row in csv.DictReader(f):
                trace = row["workload"].removeprefix("openb_pod_list_")
                policy = PAPER.get(row["sc_policy"])
                if policy is None:
                    continue
                cols = (130,) if kind == "alloc" else FRAG_AT
                out[kind][(trace, policy)].append([float(row[str(k)]) for k in cols])
    return {
        kind: {key: np.mean(v, axis=0).tolist() for key, v in table.items()}
        for kind, table in out.items()
    }


def one_run(csv_dir: str, trace: str, policy: str, seed: int, tune: float) -> dict:
    nodes = read_nodes(Path(csv_dir) / "openb_node_list_gpu_node.csv")
    pods = read_pods(Path(csv_dir) / f"openb_pod_list_{trace}.csv")
    t0 = time.process_time()
    r = run_pack(nodes, pods, policy, seed, tune, record_frag=trace == "default")
    top = int(round(tune * 100))
    alloc, frag = r.discretise(r.allocated, top), r.discretise(r.fragmented, top)
    return {
        "trace": trace,
        "policy": policy,
        "seed": seed,
        "alloc": float(alloc[top]),
        "frag": [None if np.isnan(frag[k]) else float(frag[k]) for k in FRAG_AT],
        "cpu_s": time.process_time() - t0,
        "decisions": len(r.decision_s),
        "decision_s": r.decision_s.tolist() if trace == "default" else [],
        "decision_cpu_s": r.decision_cpu_s.tolist() if trace == "default" else [],
    }


def markdown(results: list[dict], paper: dict, policies: list[str], traces: list[str]) -> str:
    by = defaultdict(list)
    for r in results:
        by[(r["trace"], r["policy"])].append(r)
    lines = [
        "| trace | " + " | ".join(policies) + " |",
        "|---" * (len(policies) + 1) + "|",
    ]
    for t in traces:
        cells = []
        for p in policies:
            runs = by.get((t, p), [])
            ours = f"{np.mean([r['alloc'] for r in runs]):.2f}" if runs else "–"
            ref = paper["alloc"].get((t, p))
            cells.append(f"{ours} ({ref[0]:.2f})" if ref else ours)
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    lines += ["", "| policy | frag @50% | frag @70% | frag @90% |", "|---|---|---|---|"]
    for p in policies:
        runs = by.get(("default", p), [])
        if not runs:
            continue
        ours = np.mean([r["frag"] for r in runs], axis=0)
        ref = paper["frag"].get(("default", p))
        lines.append(
            f"| {p} | "
            + " | ".join(
                f"{o:.1f}" + (f" ({ref[i]:.1f})" if ref else "") for i, o in enumerate(ours)
            )
            + " |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--traces", default=",".join(TRACES))
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--seeds", default="42-51")
    ap.add_argument("--tune", type=float, default=1.3)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", type=Path, default=None, help="write every run's figures here")
    args = ap.parse_args()
    csv_dir = args.data / "alibaba-openb-v2023" / "csv"
    expected = args.data / "fgd" / "expected_results"
    if not csv_dir.is_dir():
        print(f"skipped: {csv_dir} not found (the openb trace is not shipped with the repo)")
        return 0
    traces = [t for t in args.traces.split(",") if t]
    policies = [p for p in args.policies.split(",") if p]
    unknown = [p for p in policies if p not in profile_names()]
    if unknown:
        print(f"error: unknown policy {unknown[0]!r}; known: {', '.join(profile_names())}")
        return 2
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    tasks = [(t, p, s) for t in traces for p in policies for s in seeds]
    # the slowest policies first, so the pool stays busy to the end
    tasks.sort(key=lambda x: (x[1] not in ("fgd", "fsgd", "fgd-exact"), x[0] != "gpushare100"))
    paper = paper_numbers(expected) if expected.is_dir() else {"alloc": {}, "frag": {}}
    results = []
    wall0 = time.perf_counter()
    with (
        Progress(
            TextColumn("[bold]fgd sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
        ) as prog,
        ProcessPoolExecutor(max_workers=args.jobs) as pool,
    ):
        bar = prog.add_task("runs", total=len(tasks))
        futs = [pool.submit(one_run, str(csv_dir), t, p, s, args.tune) for t, p, s in tasks]
        for f in as_completed(futs):
            results.append(f.result())
            prog.advance(bar)
    wall = time.perf_counter() - wall0
    timing = {}
    for p in policies:
        mine = [r for r in results if r["policy"] == p]
        dt = np.concatenate([r["decision_s"] for r in mine] or [[]])
        dc = np.concatenate([r["decision_cpu_s"] for r in mine] or [[]])
        if len(dt):
            timing[p] = {
                "median_ms": float(np.median(dt) * 1e3),
                "p99_ms": float(np.percentile(dt, 99) * 1e3),
                "cpu_median_ms": float(np.median(dc) * 1e3),
                "cpu_p99_ms": float(np.percentile(dc, 99) * 1e3),
            }
    for r in results:
        r.pop("decision_s")
        r.pop("decision_cpu_s")

    doc = {
        "wall_seconds": wall,
        "jobs": args.jobs,
        "seeds": seeds,
        "tune": args.tune,
        "timing_default_trace": timing,
        "results": results,
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    print(markdown(results, paper, policies, traces))
    print()
    for p, t in timing.items():
        print(
            f"decision time ({p}, default trace): wall median {t['median_ms']:.3f} ms, "
            f"p99 {t['p99_ms']:.3f} ms; CPU median {t['cpu_median_ms']:.3f} ms, "
            f"p99 {t['cpu_p99_ms']:.3f} ms"
        )
    cpu = sum(r["cpu_s"] for r in results)
    print(f"{len(results)} runs in {wall:.0f} s wall ({cpu:.0f} s CPU) with {args.jobs} workers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
