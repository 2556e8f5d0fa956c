"""What-if fidelity: a live pool's snapshot, simulated (``cpool simulate --from``), against
what the live pool then really did.

    python benchmarks/whatif_fidelity.py [--jobs 16] [--seed 0] [--json OUT]

An in-process live pool (SQLite, local backend, ``gavel-36x3``, 0.1 s rounds) with two tenants
in one cohort (quota 8 K80 each, may borrow 8); jobs of 1 or 2 workers x 4 K80 that sleep
2-8 s and declare
that much work; all submitted at once. The snapshot is taken once the first jobs run; the
what-if (the pool's policy, 0.5 s rounds) predicts each waiting job's start; the live pool's
real start times are read when all jobs have ended. Prints the per-job error (predicted -
actual start) with its median and worst.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from computepool.catalog.pools import load_pool  # noqa: E402
from computepool.catalog.throughputs import load_throughputs  # noqa: E402
from computepool.sim.run import SimConfig  # noqa: E402
from computepool.sim.runner import run_policy  # noqa: E402
from computepool.sim.whatif import SnapshotFile, predictions, whatif_inputs  # noqa: E402
from tests.server.conftest import TEST_POOL, LivePool, bearer, kill_leftovers, open_live  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    tp = load_throughputs("gavel", accelerators=load_pool(TEST_POOL).accelerators)
    tmp = Path(tempfile.mkdtemp(prefix="cpool-whatif-"))
    data = tmp / "data"
    client, tok = open_live(data, f"sqlite:///{tmp / 'c.db'}")
    try:
        with client:
            p = LivePool(client, bearer(tok), data)
            quota = {"K80": {"nominal": 8, "borrowing_limit": 8}}
            who = [p.tenant(t, cohort="c", quotas=quota) for t in ("ta", "tb")]
            ids = []
            for i in range(args.jobs):
                workers = int(rng.choice([1, 2]))  # 4 or 8 K80 (4 per node)
                secs = float(rng.integers(2, 9))
                work = secs * tp.rate("generic", 4 * workers, "K80")
                spec = {"name": f"j{i}", "command": f"sleep {secs:g}", "work": work,
                        "workers": workers, "accelerators_per_worker": 4,
                        "accelerator_types": ["K80"]}  # fmt: skip
                ids.append((who[i % 2], p.submit(who[i % 2], **spec).json()["id"]))
            p.wait(lambda: any(p.job(w, j)["status"] == "running" for w, j in ids), 20)
            time.sleep(0.5)
            snap = client.get("/v1/snapshot", headers=p.admin).json()
            what = whatif_inputs(SnapshotFile.model_validate(snap), "snapshot")
            res = run_policy(what.inputs, snap["settings"]["policy"], SimConfig(round_seconds=0.5))
            pred = {r["id"]: r for r in predictions(what, res)}
            p.wait(
                lambda: all(p.job(w, j)["status"] in ("succeeded", "failed") for w, j in ids),
                300,
            )
            rows = []
            for w, j in ids:
                doc = p.job(w, j)
                was = next(x for x in snap["jobs"] if x["id"] == str(j))
                if was["status"] == "running":
                    continue
                actual = datetime.fromisoformat(doc["started_at"]).timestamp() - snap["taken_at"]
                rows.append((j, pred[str(j)]["start_s"], actual))
    finally:
        kill_leftovers(data)
    err = np.array([p_ - a for _, p_, a in rows])
    for j, p_, a in rows:
        print(
            f"job {j:3d}: predicted start +{p_:6.2f} s, actual +{a:6.2f} s, error {p_ - a:+6.2f} s"
        )
    print(
        f"{len(rows)} waiting jobs: median |error| {np.median(np.abs(err)):.2f} s, worst "
        f"{np.abs(err).max():.2f} s; latest actual start +{max(a for *_, a in rows):.1f} s"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": rows,
                    "median_abs_s": float(np.median(np.abs(err))),
                    "worst_abs_s": float(np.abs(err).max()),
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
