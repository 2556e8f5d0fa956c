"""Pool vs silos with silos sized at the 95th-percentile demand and at the true peak, on both
shipped studies (Philly virtual clusters; Alibaba openb pods, tenants by QoS class and shape).

    python benchmarks/silos_sizing.py                      # both studies, q = 0.95 and 1.0
    python benchmarks/silos_sizing.py --quantiles 0.9 0.95 1.0 --json out.json

Run from the repository root (the studies find the traces in the shared data folder next to
it). Prints one JSON line per (study, quantile): cards, utilisation, average JCT and cost per
useful accelerator-hour of (a) silos and (c) the smallest pool with the same average JCT, the
advantage (silo cards / smaller-pool cards; cost ratio), and per-tenant rows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from computepool.plan.silos import run_study
from computepool.plan.silos_study import build_input, load_study

STUDIES = ("examples/plans/pool-vs-silos.yaml", "examples/plans/pool-vs-silos-openb.yaml")


def one(path: str, q: float) -> dict:
    study, base = load_study(Path(path), {"peak_quantile": q})
    inp, facts = build_input(study, base)
    r = run_study(inp)
    s, c = r.silos, r.smaller
    return {
        "study": study.name,
        "peak_quantile": q,
        "sizing_rule": r.sizing_rule,
        "tenants": len(r.tenants),
        "jobs_measured": s.jobs,
        "silos": {"cards": s.cards, "util": round(s.utilisation, 4),
                  "avg_jct_h": round(s.avg_jct_hours, 3),
                  "usd_per_useful_h": round(s.cost_per_useful_hour, 3)},
        "smaller_pool": None if c is None else {
            "cards": c.cards, "util": round(c.utilisation, 4),
            "avg_jct_h": round(c.avg_jct_hours, 3),
            "usd_per_useful_h": round(c.cost_per_useful_hour, 3)},
        "advantage_cards": None if c is None else round(s.cards / c.cards, 2),
        "advantage_cost": None if c is None else round(
            s.cost_per_useful_hour / c.cost_per_useful_hour, 2),
        "per_tenant": [
            {"tenant": t.name, "jobs": t.jobs, "true_peak": round(t.true_peak),
             "silo_cards": t.cards, "util": round(t.utilisation, 3),
             "jct_silo_h": round(t.avg_jct_hours, 2), "jct_pool_h": round(t.pool_jct_hours, 2),
             "jct_smaller_h": round(t.smaller_jct_hours, 2)}
            for t in sorted(r.tenants, key=lambda x: -x.work_hours)
        ],
        "wall_s": round(r.wall_seconds, 1),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quantiles", type=float, nargs="+", default=[0.95, 1.0])
    ap.add_argument("--studies", nargs="+", default=list(STUDIES))
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    rows = []
    for path in a.studies:
        for q in a.quantiles:
            rows.append(one(path, q))
            print(json.dumps(rows[-1]), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
