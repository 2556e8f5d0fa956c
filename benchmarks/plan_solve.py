"""Planner solve time and optimality gap on synthetic scenarios of two sizes.

    python benchmarks/plan_solve.py            # 3y x 4 sites x 12 chips and 5y x 10 x 20, 3 seeds
    python benchmarks/plan_solve.py --seeds 5 --json out.json
    python benchmarks/plan_solve.py --no-buyable   # without the binaries of plan/buyable.py

Scenarios are random but seeded: chips with H100e 0.1-2.3, prices proportional to compute
(+-40%), yearly supply limits, some chips unavailable in CN from a random year; sites in CN, SG
and EU with power caps, build costs and lead times of 0-2 years; targets rising to 60% of what
the sites could hold; a 60% vendor cap. With ``--buyable`` (default): minimum orders of 256 or
384 cards, a fixed cost of $2-10M per (chip family, site), a largest training job of 2,048 H100e
and per-chip scale-out limits of 1,024-100,000 cards (plan/buyable.py's binaries). Times are
wall-clock of the HiGHS solve (highspy, one thread, fixed seed).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from computepool.plan.milp import build_model
from computepool.plan.result import solve_plan
from computepool.plan.scenario import parse_scenario

TIME_LIMIT = 60.0
VENDORS = ("nvidia", "huawei", "cambricon", "hygon")
JURIS = ("CN", "CN", "SG", "EU")


def buyable(doc: dict, seed: int) -> dict:
    """Add minimum orders, fixed costs per family and site, fabrics and a largest job."""
    rng = np.random.default_rng(1000 + seed)
    for row in doc["chips"]:
        row["min_order"] = int(rng.choice([256, 384]))
        row["fixed_cost_usd"] = float(rng.integers(2, 11)) * 1e6
        row["scale_out_cards"] = int(rng.choice([1024, 8192, 16384, 100000]))
    for tg in doc["targets"]:
        if tg.get("kind", "train") == "train":
            tg["largest_job_h100e"] = 2048
    return doc


def synthetic(years: int, sites: int, chips: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    start = 2026
    chip_rows = []
    for i in range(chips):
        h = float(rng.uniform(0.1, 2.3))
        row = {
            "name": f"chip{i}",
            "vendor": VENDORS[i % len(VENDORS)],
            "bf16_tflops": round(h * 989, 1),
            "h100_equiv": round(h, 3),
            "stack_efficiency": float(rng.choice([1.0, 0.75, 0.6])),
            "tdp_w": round(300 + 500 * h * rng.uniform(0.6, 1.2)),
            "price_usd": round(25000 * h * rng.uniform(0.6, 1.4)),
            "supply": int(rng.integers(5, 40)) * 1000,
            "per_node": 8,
        }
        if rng.random() < 0.3:
            row["availability"] = {"CN": {"until_year": int(start + rng.integers(0, years))}}
        chip_rows.append(row)
    site_rows = []
    for s in range(sites):
        site = {
            "name": f"site{s}",
            "jurisdiction": JURIS[s % len(JURIS)],
            "power_mw": float(rng.integers(40, 200)),
            "electricity_usd_per_kwh": round(float(rng.uniform(0.05, 0.2)), 3),
            "pue": round(float(rng.uniform(1.1, 1.5)), 2),
            "carbon_g_per_kwh": float(rng.integers(300, 700)),
        }
        if s < 2:
            site["built"] = True
        else:
            site["build_cost_usd"] = float(rng.integers(20, 80)) * 1e6
            site["lead_time_years"] = int(rng.integers(0, 3))
        site_rows.append(site)
    total_mw = sum(s["power_mw"] for s in site_rows)
    reach = total_mw / 1.5 * 1e3 * 0.6  # H100e that ~60% of the power could host at ~1 kW each
    targets = [
        {"year": start + t, "h100e": round(reach * (t + 1) / years * 0.6)} for t in range(years)
    ]
    targets.append({"year": start + years - 1, "kind": "serve", "h100e": round(reach * 0.05)})
    return {
        "name": f"synthetic-{years}y-{sites}s-{chips}c-{seed}",
        "start_year": start,
        "horizon_years": years,
        "discount_rate": 0.08,
        "vendor_cap": 0.6,
        "defaults": {
            "system_overhead": 1.8,
            "it_overhead": 1.4,
            "load_factor": 0.8,
            "facility_usd_per_it_mw": 1e7,
            "tail_years": 2,
        },
        "targets": targets,
        "sites": site_rows,
        "chips": chip_rows,
    }


def run(years: int, sites: int, chips: int, seeds: int, gap: float, real: bool) -> list[dict]:
    out = []
    for seed in range(seeds):
        doc = synthetic(years, sites, chips, seed)
        sc = parse_scenario(buyable(doc, seed) if real else doc, "synthetic")
        m, _ = build_model(sc)
        t0 = time.perf_counter()
        p = solve_plan(sc, time_limit=TIME_LIMIT, mip_rel_gap=gap)
        wall = time.perf_counter() - t0
        out.append(
            {
                "size": f"{years}y x {sites} sites x {chips} chips",
                "buyable": real,
                "seed": seed,
                "variables": m.num_vars,
                "integers": m.num_integer,
                "rows": m.num_rows,
                "feasible": p.feasible,
                "status": p.stats.status,
                "solve_s": round(p.stats.seconds, 3),
                "wall_s": round(wall, 3),
                "gap": p.stats.gap,
                "npv_busd": round(p.npv_usd() / 1e9, 3),
                "purchase_lines": p.to_dict()["purchase_lines"],
            }
        )
        print(json.dumps(out[-1]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--gap", type=float, default=1e-3, help="HiGHS relative MIP gap to stop at")
    ap.add_argument("--json", default=None)
    ap.add_argument("--buyable", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--time-limit", type=float, default=60.0)
    a = ap.parse_args()
    rows = run(3, 4, 12, a.seeds, a.gap, a.buyable) + run(5, 10, 20, a.seeds, a.gap, a.buyable)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
