"""The fidelity benchmark's test job: STEPS paced steps at a speed that depends on the accelerator.

    python ray_fidelity_job.py STEPS

A step takes 1 / (BENCH_BASE_RATE x speed) seconds, where speed is this worker's accelerator
type's factor in ``BENCH_SPEEDS`` ("H800=1.0,H100=1.5,..."; ``CPOOL_ACCELERATOR`` says which
type it got). Steps are paced against the clock (sleeping, not computing: the jobs of a
several-node demo cluster share a 2-core machine, and a CPU-bound step rate would depend on how
many run at once). It checkpoints the step count every step, resumes from
``CPOOL_RESUME_FROM``, and prints one JSON line when its first step starts and one at the end.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    steps = int(argv[0])
    speeds = dict(kv.split("=") for kv in os.environ.get("BENCH_SPEEDS", "").split(",") if kv)
    accel = os.environ.get("CPOOL_ACCELERATOR", "")
    rate = float(os.environ.get("BENCH_BASE_RATE", "10")) * float(speeds.get(accel, 1.0))
    ckpt_dir = Path(os.environ.get("CPOOL_CHECKPOINT_DIR", "."))
    resume = os.environ.get("CPOOL_RESUME_FROM")
    step = int(Path(resume).read_text()) if resume else 0
    t0 = time.time()
    print(json.dumps({"ev": "start", "t": t0, "step": step, "accel": accel}), flush=True)
    done0 = step
    while step < steps:
        step += 1
        delay = t0 + (step - done0) / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        tmp = ckpt_dir / f"step.{os.environ.get('CPOOL_WORKER_RANK', '0')}.tmp"
        tmp.write_text(str(step))
        os.replace(tmp, tmp.with_suffix(""))
    print(json.dumps({"ev": "end", "t": time.time(), "steps": step - done0}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
