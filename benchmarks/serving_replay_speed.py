"""Replay speed: the services of a workload over a day, replayed per service and batched.

Services only (no training), pooled mode, ``ServingController`` in the ``Scheduler`` every
``interval_s``. Both paths run in the same process one after the other, so the ratio holds on a
busy machine too; the figures (accelerator-hours, attainment) must be the same. The CPU
seconds of the process beside the wall time show how much of it was waiting for a CPU. Run
from the repository root::

    python benchmarks/serving_replay_speed.py --hours 24
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import computepool.serving.controller as controller
from computepool.catalog.pools import load_pool
from computepool.catalog.throughputs import load_throughputs
from computepool.model.workload import Workload
from computepool.policies.registry import get_policy
from computepool.serving.config import read_serving, with_traffic
from computepool.sim.run import SimConfig, simulate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", default="automotive-demo")
    ap.add_argument("--workload", default="examples/serving/llm-mix.yaml")
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--paths", nargs="*", default=["batched", "per-service"])
    args = ap.parse_args()
    pool = load_pool(args.pool)
    tp = load_throughputs("gavel", accelerators=pool.accelerators)
    t = time.perf_counter()
    sw = with_traffic(read_serving(args.workload), duration_s=args.hours * 3600.0)
    draw = time.perf_counter() - t
    print(f"{len(sw.services)} services, {sum(len(s) for s in sw.streams):,} requests over "
          f"{args.hours:g} h; streams drawn in {draw:.1f} s")  # fmt: skip
    empty = Workload(np.zeros(0), np.zeros(0), np.zeros(0), [])
    original = controller.ServingController
    for path in args.paths:
        batched = path == "batched"
        controller.ServingController = lambda *a, b=batched, **k: original(*a, batched=b, **k)
        t, cpu = time.perf_counter(), time.process_time()
        res = simulate(pool, empty, tp, get_policy("las"), SimConfig(), services=sw)
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        s = res.extra["serving"]
        print(f"{path}: {wall:.1f} s, CPU {cpu:.1f} s (incl. the previous period's streams), "
              f"{s['accelerator_hours']:.3f} acc-h, attainment {s['slo_attainment']:.6f}",
              flush=True)  # fmt: skip
    controller.ServingController = original


if __name__ == "__main__":
    main()
