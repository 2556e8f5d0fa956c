"""Many models on few cards: dedicated (first card), dedicated (best card), pooled, pooled with
multiplexing, on a workload's services (default the long-tail marketplace), and a sweep over
popularity skew and traffic volume.

Same models, request streams and SLOs in every variant; services only (no training). All
decisions see the past only (the dedicated baselines are sized from the previous period's
traffic: the same traffic drawn with another seed). Run from the repository root::

    python benchmarks/serving_multiplex.py                      # examples/serving/long-tail.yaml
    python benchmarks/serving_multiplex.py --workload examples/serving/llm-mix.yaml
    python benchmarks/serving_multiplex.py --sweep --json sweep.json
"""

from __future__ import annotations

import argparse
import json
import sys
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

#: The variants below share these settings: models below two instances grouped, SLO-replay
#: sizing (``REPLAY``), and the histogram keep-alive with a 4-h history of needs (``HIST``).
REPLAY = dict(mode="pooled", multiplex=True, hot_fraction=2.0, burst_sizing="replay")
HIST = dict(keep_alive_policy="histogram", sizing_history_s=14400.0)
VARIANTS = {
    "dedicated (first card)": dict(mode="dedicated", flavor_choice="first", multiplex=False),
    "dedicated (best card)": dict(mode="dedicated", flavor_choice="price", multiplex=False),
    "pooled": dict(mode="pooled", multiplex=False),
    "pooled + multiplexing": dict(mode="pooled", multiplex=True),
    "pooled + mux + disaggregation": dict(mode="pooled", multiplex=True, disaggregate=True),
    "pooled + mux (models below two instances grouped), SLO-replay sizing": REPLAY,
    "+ keep-alive from each model's idle-time histogram": {
        **REPLAY,
        "keep_alive_policy": "histogram",
    },
    "+ histogram keep-alive, need >= median of the last 4 h's replayed needs": {
        **REPLAY,
        **HIST,
        "sizing_history_quantile": 0.5,
    },
    "+ histogram keep-alive, need >= 75th percentile of the last 4 h's replayed needs": {
        **REPLAY,
        **HIST,
        "sizing_history_quantile": 0.75,
    },
    "SLO-replay sizing + Aegaeon swap residency": {**REPLAY, "residency": "swap"},
    "SLO-replay sizing + smaller-instance groups folded into larger ones (mux_merge)": {
        **REPLAY,
        "mux_merge": True,
    },
    "+ mux_merge, histogram keep-alive, need >= 75th percentile of the last 4 h's needs": {
        **REPLAY,
        **HIST,
        "sizing_history_quantile": 0.75,
        "mux_merge": True,
    },
}
BEST = "dedicated (best card)"


def run(pool, tp, sw: ServingWorkload, changes: dict) -> dict:
    empty = Workload(np.zeros(0), np.zeros(0), np.zeros(0), [])
    s = replace(sw, config=sw.config.variant(**changes))
    t = time.perf_counter()
    res = simulate(pool, empty, tp, get_policy("las"), SimConfig(), services=s)
    out = dict(res.extra["serving"])
    out["wall_seconds"] = time.perf_counter() - t
    out["groups"] = [
        {
            "name": r["name"],
            "members": len(r["members"]),
            "accelerator_hours": r["accelerator_hours"],
        }
        for r in res.extra["services"]
        if r["status"] == "group"
    ]
    rows = res.extra["services"]
    # where the accelerator-hours go: own replicas, mux groups, prefill pools
    out["hours_by_kind"] = {
        "own replicas": sum(
            r["accelerator_hours"] for r in rows if r["status"] == "ok" and "served_by" not in r
        ),
        "mux groups": sum(r["accelerator_hours"] for r in rows if r["status"] == "group"),
        "prefill pools": sum(r["accelerator_hours"] for r in rows if r["status"] == "prefill pool"),
    }
    top = sorted(
        (r for r in rows if r["status"] != "ok" or "served_by" not in r),
        key=lambda r: -r["accelerator_hours"],
    )[:5]
    out["top"] = [
        (r["name"], round(r["accelerator_hours"], 1), len(r.get("members", []))) for r in top
    ]
    return out


def row(name: str, r: dict, best: dict) -> str:
    return (
        f"| {name} | {r['accelerator_hours']:,.1f} | {r['accelerator_hours'] / best['accelerator_hours']:.0%} "
        f"| {r['peak_accelerators']:,.0f} | {r['cost_usd']:,.0f} | {r['cost_usd'] / best['cost_usd']:.0%} "
        f"| {r['slo_attainment']:.2%} / {r['slo_attainment_min_service']:.2%} | {r['wall_seconds']:.1f} s |"
    )


HEAD = (
    "| variant | accelerator-hours | vs dedicated (best card) | peak accelerators | cost (USD) "
    "| cost vs best card | SLO attainment (all / worst service) | wall |\n"
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def _cell(r: dict, k: int) -> str:
    v = r[list(VARIANTS)[k]]
    return f"{v['accelerator_hours']:,.0f} ({v['slo_attainment_min_service']:.2%})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", default="automotive-demo")
    ap.add_argument("--workload", default="examples/serving/long-tail.yaml")
    ap.add_argument("--sweep", action="store_true", help="over Zipf skew and rate scale")
    ap.add_argument("--zipf", type=float, nargs="*", default=[0.8, 1.2, 1.6])
    ap.add_argument("--rates", type=float, nargs="*", default=[1.0, 4.0, 16.0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--only", nargs="*", default=None,
                    help="run only the variants whose names contain one of these (and the best card)")  # fmt: skip
    args = ap.parse_args()
    if args.only:
        for name in list(VARIANTS):
            if name != BEST and not any(o in name for o in args.only):
                del VARIANTS[name]
    pool = load_pool(args.pool)
    tp = load_throughputs("gavel", accelerators=pool.accelerators)
    sw = read_serving(args.workload)
    if sw is None:
        sys.exit(f"{args.workload}: no services")
    out: dict = {}
    if not args.sweep:
        print(f"{args.workload}: {len(sw.services)} services, {sum(len(s) for s in sw.streams):,} "
              f"requests, {sw.traffic}\n\n{HEAD}")  # fmt: skip
        for name, ch in VARIANTS.items():
            out[name] = run(pool, tp, sw, ch)
        for name in VARIANTS:
            print(row(name, out[name], out[BEST]), flush=True)
        print(
            "\nwhere the accelerator-hours go (own replicas / mux groups / prefill pools; top 5):"
        )
        for name in VARIANTS:
            k = out[name]["hours_by_kind"]
            print(f"- {name}: {' / '.join(f'{v:,.1f}' for v in k.values())}; {out[name]['top']}")
    else:
        names = list(VARIANTS)
        print("| Zipf | rate scale | requests | " + " | ".join(f"{n} acc-h (worst)" for n in names)
              + " | cheapest pooled at >= 99 % vs best card |")  # fmt: skip
        print("| ---: " * (len(names) + 4) + "|")
        for z in args.zipf:
            for rs in args.rates:
                s = with_traffic(sw, rate_scale=rs, popularity=z)
                r = {name: run(pool, tp, s, ch) for name, ch in VARIANTS.items()}
                out[f"{z}/{rs}"] = r
                b = r[BEST]
                ok = [v["accelerator_hours"] for n, v in r.items()
                      if not n.startswith("dedicated") and v["slo_attainment_min_service"] >= 0.99]  # fmt: skip
                best_ok = f"{min(ok) / b['accelerator_hours']:.0%}" if ok else "none"
                print(
                    f"| {z:g} | {rs:g} | {b['requests']:,} | "
                    + " | ".join(_cell(r, k) for k in range(len(names)))
                    + f" | {best_ok} |",
                    flush=True,
                )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
