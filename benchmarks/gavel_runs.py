"""Shared runner for the Gavel reproduction benchmarks: run (policy, workload) pairs in worker
processes with a Rich progress bar and read the published anchor points.

Not a benchmark by itself; ``gavel_fig8.py``, ``gavel_fig9.py`` and ``gavel_makespan.py`` use it.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
#: Gavel's published results: ``$COMPUTEPOOL_SHARED_DATA`` (as the tests read it) or the
#: ``shared/data`` folder beside the checkout.
SHARED_DATA = Path(os.environ.get("COMPUTEPOOL_SHARED_DATA", REPO.parent / "shared" / "data"))
REFERENCE = SHARED_DATA / "gavel" / "reference_results"
#: Our policy name -> Gavel's name in the reference CSVs.
GAVEL_NAME = {
    "las": "max_min_fairness_perf",
    "las-centre": "max_min_fairness_perf",
    "las-lex": "max_min_fairness_perf",
    "las-agnostic": "max_min_fairness",
    "las-packed": "max_min_fairness_packed",
    "fifo": "fifo_perf",
    "fifo-agnostic": "fifo",
    "ftf": "finish_time_fairness_perf",
    "ftf-agnostic": "finish_time_fairness",
}


@dataclass(frozen=True)
class Run:
    policy: str
    workload: str
    window: tuple[int, int] | None
    pool: str = "gavel-36x3"
    recompute_on_change: bool = False
    #: ``SimConfig.starvation_rounds`` (inf: Gavel's round order exactly).
    starvation_rounds: float = 2.0
    #: ``SimConfig.gavel_admission`` (True: Gavel's simulator, a new job waits for an
    #: allocation that includes it).
    gavel_admission: bool = False


def run_one(run: Run) -> dict:
    """Simulate one (policy, workload); also return the window's per-job JCTs (for rho against
    an ``isolated`` run) and whether arrivals ran out before the window finished."""
    from computepool.sim.run import SimConfig
    from computepool.sim.runner import load_inputs, run_policy

    inputs = load_inputs(run.pool, run.workload)
    cfg = SimConfig(
        window=run.window,
        recompute_on_change=run.recompute_on_change,
        starvation_rounds=run.starvation_rounds,
        gavel_admission=run.gavel_admission,
    )
    res = run_policy(inputs, run.policy, cfg)
    s = res.summary()
    sl = res.window_slice()
    jct = res.jct[sl]
    window_end = float(np.nanmax(res.end[sl])) if np.isfinite(jct).any() else float("nan")
    keep = (
        "avg_jct_hours",
        "p50_jct_hours",
        "p99_jct_hours",
        "mean_ftf_rho",
        "makespan_hours",
        "utilization_overall",
        "jobs_completed",
        "rounds",
        "policy_calls",
        "wall_seconds",
    )
    return {
        "policy": run.policy,
        "workload": run.workload,
        **{k: s[k] for k in keep},
        # Gavel keeps generating jobs until the window is done; a run whose arrivals stopped
        # first is lighter-loaded at the end than Gavel's and must not be compared.
        "arrivals_ran_dry": bool(float(res.arrival[-1]) < window_end),
        "window_jct": [None if not np.isfinite(x) else float(x) for x in jct],
    }


def isolated_rho(results: list[dict]) -> None:
    """Add ``rho_isolated`` (Gavel's mean finish-time fairness: JCT / JCT under ``isolated``,
    over the window) to every result whose workload has an ``isolated`` run."""
    iso = {r["workload"]: r["window_jct"] for r in results if r["policy"] == "isolated"}
    for r in results:
        base = iso.get(r["workload"])
        if base is None:
            continue
        a = np.array([np.nan if x is None else x for x in r["window_jct"]], dtype=float)
        b = np.array([np.nan if x is None else x for x in base], dtype=float)
        ok = np.isfinite(a) & np.isfinite(b) & (b > 0)
        r["rho_isolated"] = float(np.mean(a[ok] / b[ok])) if ok.any() else None


def run_all(runs: Iterable[Run], workers: int, title: str) -> list[dict]:
    # imported here: a single ``run_one`` (benchmarks/gavel_speed.py times its whole process)
    # needs neither a process pool nor a progress bar
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    runs = list(runs)
    out: list[dict] = []
    with (
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
        ) as progress,
        ProcessPoolExecutor(max_workers=workers) as pool,
    ):
        task = progress.add_task(title, total=len(runs))
        futures = {pool.submit(run_one, r): r for r in runs}
        for fut in as_completed(futures):
            out.append(fut.result())
            progress.advance(task)
    return out


def anchors(metric: str, trace_prefix: str) -> dict[tuple[str, float], float]:
    """(gavel policy, rate) -> published value, or {} when the shared data is absent."""
    path = REFERENCE / "continuous_avg_jct_and_ftf.csv"
    if not path.exists():
        from rich.console import Console

        Console(stderr=True).print(f"[yellow]anchors skipped: {path} not found")
        return {}
    out = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            if row["metric"] == metric and row["trace"].startswith(trace_prefix):
                out[(row["policy"], float(row["input_job_rate_jobs_per_hour"]))] = float(
                    row["value"]
                )
    return out


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


def write_json(results: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    from rich.table import Table

    t = Table(title=title)
    for c in columns:
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(*r)
    return t
