"""LP time like for like: our LAS and Gavel's ``max_min_fairness_perf`` (cvxpy + ECOS) on the
very same inputs, every job its own speeds (``policy_runtime``'s ``unique`` case).

Three steps, the last in a Python environment with Gavel's dependencies (numpy, cvxpy, ecos)
and a checkout of Gavel (not part of this repository)::

    python -m benchmarks.gavel_lp_compare export DIR          # writes DIR/in_N_F.npz
    python -m benchmarks.gavel_lp_compare ours DIR            # times las-centre and las
    GAVEL_VENV/bin/python benchmarks/gavel_lp_compare.py gavel DIR --gavel GAVEL/scheduler

Run the last two steps back to back (twice, alternating) on a busy machine. Times are the
median of 3 calls (1 above 70,000 variables) after a 16-job warm-up; Gavel's
include its flatten/unflatten, as ours include building the LP.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

SHAPES = [(2048, 3), (10000, 3), (2048, 30), (10000, 30)]


def _median_time(fn, args: tuple, reps: int) -> float:
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn(*args)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def _reps(n: int, F: int) -> int:
    return 3 if n * F <= 70000 else 1


def export(out: Path) -> None:
    from benchmarks.policy_runtime import make_input

    out.mkdir(parents=True, exist_ok=True)
    for n, F in SHAPES:
        inp = make_input(n, F, "unique")
        np.savez(out / f"in_{n}_{F}.npz", thr=inp.throughput, sf=inp.scale_factor, cap=inp.capacity)


def _unit_weights(inp):
    """Gavel's side gives every job weight 1; so does ours here (same inputs exactly)."""
    from dataclasses import replace

    return replace(inp, weight=np.ones(inp.n))


def ours(inputs: Path) -> None:
    from benchmarks.policy_runtime import make_input
    from computepool.policies import get_policy

    for n, F in SHAPES:
        inp = _unit_weights(make_input(n, F, "unique"))
        d = np.load(inputs / f"in_{n}_{F}.npz")
        if not np.array_equal(d["thr"], inp.throughput):
            raise SystemExit(f"{inputs}: in_{n}_{F}.npz is not this code's input (export again)")
        for name in ("las-centre", "las"):
            pol = get_policy(name)
            pol.allocate(_unit_weights(make_input(16, F, "unique")))
            t = _median_time(pol.allocate, (inp,), _reps(n, F))
            print(f"ours {name:10s} jobs={n:6d} flavors={F:3d}: {t:.3f} s", flush=True)


def gavel(inputs: Path, scheduler_dir: Path) -> None:
    sys.path.insert(0, str(scheduler_dir))
    sys.path.insert(0, str(scheduler_dir / "policies"))
    from max_min_fairness import MaxMinFairnessPolicyWithPerf  # Gavel's, from its checkout

    for n, F in SHAPES:
        d = np.load(inputs / f"in_{n}_{F}.npz")
        thr, sf, cap = d["thr"], d["sf"], d["cap"]
        types = [f"w{f:02d}" for f in range(F)]
        T = {i: {types[f]: float(thr[i, f]) for f in range(F)} for i in range(n)}
        S = {i: int(sf[i]) for i in range(n)}
        W = {i: 1.0 for i in range(n)}
        C = {types[f]: int(cap[f]) for f in range(F)}
        pol = MaxMinFairnessPolicyWithPerf("ECOS")
        pol.get_allocation({i: T[i] for i in range(16)}, S, W, C)
        t = _median_time(pol.get_allocation, (T, S, W, C), _reps(n, F))
        print(f"gavel ECOS  jobs={n:6d} flavors={F:3d}: {t:.3f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("step", choices=["export", "ours", "gavel"])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--gavel", type=Path, help="Gavel's scheduler/ directory (step gavel)")
    args = ap.parse_args()
    if args.step == "export":
        export(args.dir)
    elif args.step == "ours":
        ours(args.dir)
    else:
        if args.gavel is None:
            ap.error("step gavel needs --gavel GAVEL/scheduler")
        gavel(args.dir, args.gavel)


if __name__ == "__main__":
    main()
