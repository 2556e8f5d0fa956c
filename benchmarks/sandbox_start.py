"""Cost of a sandboxed worker start vs an unsandboxed one (local backend).

Each start is what the local backend does for one worker: write ``rank-0.launch``, start the
shim, which claims the rank, starts the command (``/bin/true``) directly or under bubblewrap as
the tenant's user, waits until its whole process tree is gone and writes the exit record. The
time is from the launch record being written to the exit record being there: ms per worker,
median and p99 over ``--starts`` starts (one at a time). Needs root and bubblewrap for the
sandboxed half (``cpool serve`` says whether it has them).

    python benchmarks/sandbox_start.py [--starts 100] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from computepool.backends.sandbox import Limits, SandboxConfig, SandboxStatus, probe
from computepool.backends.shim import write_json
from computepool.backends.worker_env import Launch, inherited_env
from computepool.backends.worker_launch import job_dirs, make_private_dir, rank_launch


def one_start(root: Path, n: int, sandbox: SandboxStatus | None) -> float:
    d = root / "runs" / "bench" / str(n)
    d.mkdir(parents=True, mode=0o700)
    uid = sandbox.config.uid_base + 1 if sandbox is not None else None
    dirs = job_dirs(root / "work", root / "checkpoints", "bench", uid)
    launch = Launch("bench", ("/bin/true",), "t", tenant_id=1)
    env = {"CPOOL_JOB_ID": "bench", "CPOOL_CHECKPOINT_DIR": str(dirs.checkpoint)}
    t0 = time.perf_counter()
    write_json(d / "rank-0.launch", rank_launch(launch, env, dirs, sandbox, uid, Limits(), []))
    shim = [sys.executable, "-m", "computepool.backends.shim", str(d), "0", "--launch"]
    subprocess.run(shim, env=inherited_env(os.environ), cwd=d, check=True)
    took = time.perf_counter() - t0
    rc = json.loads((d / "rank-0.exit").read_text())["rc"]
    if rc != 0:
        raise SystemExit(f"start {n} failed (rc {rc}): {(d / 'rank-0.log').read_text()}")
    return took * 1000.0


def summary(ms: np.ndarray) -> dict:
    return {
        "starts": len(ms),
        "median_ms": float(np.median(ms)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
    }


def measure(starts: int, modes: dict[str, SandboxStatus | None]) -> dict[str, dict]:
    """``starts`` starts per mode, the modes taken in turn (a busy machine slows both alike)."""
    out: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        roots = {m: Path(tmp) / m for m in modes}
        for root in roots.values():
            for sub in ("runs", "work", "checkpoints"):
                make_private_dir(root / sub)
        for m, sb in modes.items():
            one_start(roots[m], 0, sb)  # warm the page cache
        for n in range(1, starts + 1):
            for m, sb in modes.items():
                out[m].append(one_start(roots[m], n, sb))
    return {m: summary(np.array(v)) for m, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--starts", type=int, default=100)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    status = probe(SandboxConfig())
    modes: dict[str, SandboxStatus | None] = {"unsandboxed": None}
    if status.enabled:
        modes["sandboxed"] = status
    else:
        print(f"sandboxed half skipped: {status.reason}")
    rows = measure(args.starts, modes)
    print(f"{'worker start':<14}{'starts':>8}{'median ms':>12}{'p99 ms':>10}{'mean ms':>10}")
    for name, r in rows.items():
        print(
            f"{name:<14}{r['starts']:>8}{r['median_ms']:>12.1f}{r['p99_ms']:>10.1f}"
            f"{r['mean_ms']:>10.1f}"
        )
    if "sandboxed" in rows:
        extra = rows["sandboxed"]["median_ms"] - rows["unsandboxed"]["median_ms"]
        print(f"sandbox adds {extra:.1f} ms per worker start (median); limits: {status.limits}")
    if args.json:
        args.json.write_text(json.dumps({"limits": status.limits, **rows}, indent=2))


if __name__ == "__main__":
    main()
