"""Figure set 3: makespan of Gavel's static multi-GPU trace (700 jobs, all at t=0, seed 1) on
36:36:36, beside Gavel's published makespan (``static_makespan_hours.csv``).

    python -m benchmarks.gavel_makespan [--jobs 700] [--policies makespan fifo fifo-agnostic las]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from rich.console import Console

from benchmarks.gavel_runs import REFERENCE, Run, default_workers, run_all, table, write_json

#: Our policy -> the label in Gavel's makespan notebook.
GAVEL_LABEL = {"makespan": "Gavel", "fifo-agnostic": "FIFO"}


def anchor(jobs: int) -> dict[str, float]:
    path = REFERENCE / "static_makespan_hours.csv"
    if not path.exists():
        Console(stderr=True).print(f"[yellow]anchors skipped: {path} not found")
        return {}
    with path.open() as f:
        return {
            r["policy_label"]: float(r["makespan_hours"])
            for r in csv.DictReader(f)
            if int(r["num_total_jobs"]) == jobs
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=700)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--policies", nargs="+", default=["makespan", "fifo", "fifo-agnostic", "las"])
    ap.add_argument("--workers", type=int, default=default_workers())
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/gavel_makespan.json"))
    args = ap.parse_args()
    spec = f"gavel:lam=0,jobs={args.jobs},multi_gpu=true,seed={args.seed}"
    results = run_all([Run(p, spec, None) for p in args.policies], args.workers, "makespan")
    write_json(results, args.out)
    anchors = anchor(args.jobs)
    rows = [
        [
            r["policy"],
            f"{r['makespan_hours']:.1f}",
            f"{anchors[GAVEL_LABEL[r['policy']]]:.1f}"
            if GAVEL_LABEL.get(r["policy"]) in anchors
            else "-",  # no anchor for this policy, or the shared data is absent
            f"{r['wall_seconds']:.1f}",
        ]
        for r in sorted(results, key=lambda r: r["makespan_hours"])
    ]
    Console().print(table(f"makespan (h), {spec}", ["policy", "ours", "Gavel", "wall s"], rows))


if __name__ == "__main__":
    main()
