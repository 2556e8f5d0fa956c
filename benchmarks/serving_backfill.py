"""Services + preemptible training backfill on one pool: utilisation, SLOs, training JCT.

Three runs of the same training stream on ``automotive-demo`` under ``las``:

* ``training only``: no services (the JCT reference);
* ``pooled + backfill``: the services autoscale on the pool; training fills what they leave and
  gives way (spot jobs only, after a grace period) when they scale up;
* ``dedicated + training``: the services' peak-sized dedicated replicas are held all run.

Utilisation is over the services' horizon: (training accelerator-seconds + accelerators held by
services) / (pool accelerators x horizon). Run from the repository root::

    python benchmarks/serving_backfill.py --rate-scale 40 --json backfill.json --plot backfill.png
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from computepool.catalog.pools import load_pool
from computepool.catalog.throughputs import load_throughputs
from computepool.policies.registry import get_policy
from computepool.serving.config import read_serving, with_traffic
from computepool.sim.run import SimConfig, simulate
from computepool.traces import load_workload


def _jct(res, horizon: float) -> dict:
    jct = res.jct[np.isfinite(res.jct)] / 3600.0
    s = res.summary()
    ser = res.series_arrays()
    t0, t1 = ser["t0"], ser["t1"]
    frac = np.clip((np.minimum(t1, horizon) - t0) / np.maximum(t1 - t0, 1e-12), 0, 1)
    busy = ser["busy"].sum(axis=1)  # training + services (when present)
    util = float((busy * frac).sum() / (res.capacity.sum() * horizon))
    return {
        "jobs_completed": s["jobs_completed"],
        "avg_jct_hours": float(jct.mean()),
        "p50_jct_hours": float(np.median(jct)),
        "p99_jct_hours": float(np.percentile(jct, 99)),
        "training_preemptions": int(res.preemptions.sum()),
        "pool_utilization_horizon": util,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", default="automotive-demo")
    ap.add_argument("--workload", default="examples/serving/llm-mix.yaml")
    ap.add_argument("--policy", default="las")
    ap.add_argument("--rate-scale", type=float, default=None, help="override traffic.rate_scale")
    ap.add_argument("--json", default=None)
    ap.add_argument("--plot", default=None)
    args = ap.parse_args()
    pool = load_pool(args.pool)
    tp = load_throughputs("gavel", accelerators=pool.accelerators)
    jobs = load_workload(args.workload, throughputs=tp)
    sw = read_serving(args.workload)
    if args.rate_scale is not None:
        sw = with_traffic(sw, rate_scale=args.rate_scale)
    horizon = sw.horizon_s
    runs = {
        "training only": None,
        "pooled + backfill": sw,
        "dedicated + training": replace(
            sw, config=sw.config.variant(mode="dedicated", flavor_choice="first")
        ),
    }
    out: dict[str, dict] = {}
    results = {}
    for name, services in runs.items():
        t = time.perf_counter()
        res = simulate(pool, jobs, tp, get_policy(args.policy), SimConfig(), services=services)
        results[name] = res
        row = _jct(res, horizon)
        if services is not None:
            srv = res.extra["serving"]
            row.update(
                serving_accelerator_hours=srv["accelerator_hours"],
                serving_mean_accelerators=srv["mean_accelerators"],
                slo_attainment=srv["slo_attainment"],
                slo_attainment_min_service=srv["slo_attainment_min_service"],
                preemptions_for_services=srv["preemptions_for_services"],
            )
        row["wall_seconds"] = time.perf_counter() - t
        out[name] = row
        print(f"{name}: {row['wall_seconds']:.1f} s", flush=True)
    ref = out["training only"]["avg_jct_hours"]
    print(f"\n{sw.traffic}, {len(jobs)} training jobs\n")
    print("| run | pool utilisation (horizon) | services held (mean acc.) | SLO attainment "
          "(all / worst) | avg JCT (h) | JCT penalty | p99 JCT (h) | preemptions (by services) |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in out.items():
        slo = (
            f"{r['slo_attainment']:.2%} / {r['slo_attainment_min_service']:.2%}"
            if "slo_attainment" in r
            else "-"
        )
        held = f"{r['serving_mean_accelerators']:.0f}" if "slo_attainment" in r else "0"
        pre = f"{r['training_preemptions']} ({r.get('preemptions_for_services', 0)})"
        print(
            f"| {name} | {r['pool_utilization_horizon']:.1%} | {held} | {slo} | "
            f"{r['avg_jct_hours']:.2f} | {r['avg_jct_hours'] / ref - 1:+.1%} | "
            f"{r['p99_jct_hours']:.1f} | {pre} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    if args.plot:
        _plot(results["pooled + backfill"], horizon, args.plot)


def _plot(res, horizon: float, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = res.series
    t0, t1 = np.asarray(s.t0), np.asarray(s.t1)
    dt = np.maximum(t1 - t0, 1e-9)
    train = np.vstack(s.busy).sum(axis=1) / dt
    serve = np.vstack(s.serving).sum(axis=1) / dt
    keep = t0 < horizon
    cap = res.capacity.sum()
    fig, ax = plt.subplots(figsize=(9, 3.4))
    x = t0[keep] / 3600
    ax.stackplot(x, serve[keep] / cap * 100, train[keep] / cap * 100,
                 labels=["services (held)", "training backfill"], step="post")  # fmt: skip
    ax.set_ylim(0, 100)
    ax.set_xlabel("hours")
    ax.set_ylabel("% of pool accelerators")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
