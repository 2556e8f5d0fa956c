"""The fidelity benchmark's test job: STEPS steps of real CPU work.

    python ray_fidelity_job.py STEPS

A step is ``BENCH_REPS`` (default 40) products of two ``BENCH_N`` x ``BENCH_N`` (default 160)
float64 matrices with numpy, one BLAS thread: the same work on every accelerator type. Nothing
tells the job how fast it should be: its speed is whatever the CPU it lands on gives it, and
the pool measures that (``ray_fidelity.py`` builds the simulator's throughput table from a
separate measurement run). Each worker runs the steps (a gang's workers all compute). It
checkpoints the step count every step, resumes from ``CPOOL_RESUME_FROM``, and prints one JSON
line when its first step starts and one at the end.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy: one core's worth of work per worker

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def main(argv: list[str]) -> int:
    steps = int(argv[0])
    n = int(os.environ.get("BENCH_N", "160"))
    reps = int(os.environ.get("BENCH_REPS", "40"))
    rng = np.random.default_rng(int(os.environ.get("CPOOL_WORKER_RANK", "0")))
    a = rng.standard_normal((n, n)) / np.sqrt(n)
    b = rng.standard_normal((n, n)) / np.sqrt(n)
    ckpt_dir = Path(os.environ.get("CPOOL_CHECKPOINT_DIR", "."))
    resume = os.environ.get("CPOOL_RESUME_FROM")
    step = int(Path(resume).read_text()) if resume else 0
    t0 = time.time()
    accel = os.environ.get("CPOOL_ACCELERATOR", "")
    print(json.dumps({"ev": "start", "t": t0, "step": step, "accel": accel}), flush=True)
    done0, check = step, 0.0
    while step < steps:
        step += 1
        c = a
        for _ in range(reps):
            c = c @ b
        check += float(c[0, 0])
        tmp = ckpt_dir / f"step.{os.environ.get('CPOOL_WORKER_RANK', '0')}.tmp"
        tmp.write_text(str(step))
        os.replace(tmp, tmp.with_suffix(""))
    t1 = time.time()
    print(json.dumps({"ev": "end", "t": t1, "steps": step - done0, "check": check}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
