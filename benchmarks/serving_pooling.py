"""Dedicated-per-model vs pooled serving, with the mechanisms switched on one at a time.

Same models, same request streams, same SLOs (TTFT p99 <= 2 s, TBT p99 <= 100 ms), services
only (no training), on a pool (default ``automotive-demo``). Variants:

* ``dedicated``: each model its own whole devices on the first accelerator it lists (H20 in
  China, H100 in Frankfurt/Singapore), sized once for the previous period's peak, held all run
  (the status quo; ``--serving dedicated``);
* ``+ flavor``: the same, on the cheapest shape per model (price-performance;
  ``--serving dedicated-best``);
* ``+ packing``: ... and small models on slices of a shared device (still peak-sized, static);
* ``+ autoscale = pooled``: replicas follow the load (the pooled mode);
* ``+ multiplexing``: rarely used models share instances (``serving.multiplex``);
* leave-one-out from pooled: ``pooled - flavor``, ``pooled - packing``, ``pooled - autoscale``.

Run from the repository root::

    python benchmarks/serving_pooling.py --json pooling.json --plot pooling.png
    python benchmarks/serving_pooling.py --sweep  # savings vs traffic volume and skew
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
from computepool.model.workload import Workload
from computepool.policies.registry import get_policy
from computepool.serving.config import read_serving, with_traffic
from computepool.serving.service import ServingWorkload
from computepool.sim.run import SimConfig, simulate

VARIANTS = {
    "dedicated": dict(mode="dedicated", flavor_choice="first"),
    "+ flavor": dict(mode="dedicated"),
    "+ packing": dict(autoscale=False),
    "+ autoscale = pooled": dict(),
    "+ multiplexing": dict(multiplex=True),
    "pooled - flavor": dict(flavor_choice="first"),
    "pooled - packing": dict(packing=False),
    "pooled - autoscale": dict(autoscale=False, packing=True),
}


def run_variant(pool, tp, sw: ServingWorkload, changes: dict) -> dict:
    empty = Workload(np.zeros(0), np.zeros(0), np.zeros(0), [])
    s = replace(sw, config=sw.config.variant(**changes))
    t = time.perf_counter()
    res = simulate(pool, empty, tp, get_policy("las"), SimConfig(), services=s)
    out = dict(res.extra["serving"])
    out["wall_seconds"] = time.perf_counter() - t
    return out


def table(rows: dict[str, dict]) -> str:
    base = rows["dedicated"]
    lines = [
        "| variant | accelerator-hours | vs dedicated | peak accelerators | cost (USD) "
        "| SLO attainment (all / worst service) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows.items():
        save = 1 - r["accelerator_hours"] / base["accelerator_hours"]
        lines.append(
            f"| {name} | {r['accelerator_hours']:,.1f} | {-save:+.0%} | "
            f"{r['peak_accelerators']:,.0f} | {r['cost_usd']:,.0f} | "
            f"{r['slo_attainment']:.2%} / {r['slo_attainment_min_service']:.2%} |"
        )
    return "\n".join(lines)


def plot(rows: dict[str, dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    acc = [rows[n]["accelerator_hours"] for n in names]
    att = [rows[n]["slo_attainment"] * 100 for n in names]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    bars = ax.barh(names[::-1], acc[::-1], color="#4C72B0")
    ax.set_xlabel("accelerator-hours (services only)")
    for b, a in zip(bars, att[::-1], strict=True):
        ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {a:.2f} % SLO", va="center")
    ax.set_xlim(0, max(acc) * 1.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", default="automotive-demo")
    ap.add_argument("--workload", default="examples/serving/llm-mix.yaml")
    ap.add_argument("--rate-scale", type=float, default=None, help="override traffic.rate_scale")
    ap.add_argument("--zipf", type=float, default=None, help="override traffic.popularity")
    ap.add_argument("--hours", type=float, default=None, help="override the horizon")
    ap.add_argument("--sweep", action="store_true", help="dedicated vs pooled over loads/skews")
    ap.add_argument("--json", default=None)
    ap.add_argument("--plot", default=None)
    args = ap.parse_args()
    pool = load_pool(args.pool)
    tp = load_throughputs("gavel", accelerators=pool.accelerators)
    sw = read_serving(args.workload)
    changes = {}
    if args.rate_scale is not None:
        changes["rate_scale"] = args.rate_scale
    if args.zipf is not None:
        changes["popularity"] = args.zipf
    if args.hours is not None:
        changes["duration_s"] = args.hours * 3600.0
    if changes:
        sw = with_traffic(sw, **changes)
    if args.sweep:
        out = {}
        print("| rate scale | Zipf | requests | dedicated acc-h (SLO) | dedicated, best card "
              "acc-h (SLO) | pooled acc-h (SLO) | fewer vs dedicated / vs best card |")  # fmt: skip
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for rs in (1.0, 3.0, 10.0, 30.0):
            for z in (1.0, 1.5):
                s = with_traffic(sw, rate_scale=rs, popularity=z)
                d = run_variant(pool, tp, s, VARIANTS["dedicated"])
                b = run_variant(pool, tp, s, VARIANTS["+ flavor"])
                p = run_variant(pool, tp, s, VARIANTS["+ autoscale = pooled"])
                out[f"{rs}/{z}"] = {"dedicated": d, "dedicated_best_card": b, "pooled": p}
                da, ba, pa = (x["accelerator_hours"] for x in (d, b, p))
                print(
                    f"| {rs:g} | {z:g} | {p['requests']:,} | {da:,.0f} ({d['slo_attainment']:.2%}) "
                    f"| {ba:,.0f} ({b['slo_attainment']:.2%}) | {pa:,.0f} "
                    f"({p['slo_attainment']:.2%}) | {1 - pa / da:.0%} / {1 - pa / ba:.0%} |",
                    flush=True,
                )
    else:
        out = {}
        for name, ch in VARIANTS.items():
            out[name] = run_variant(pool, tp, sw, ch)
            print(f"{name}: {out[name]['wall_seconds']:.1f} s", flush=True)
        print(f"{sw.traffic}\n")
        print(table(out))
        if args.plot:
            plot(out, args.plot)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
