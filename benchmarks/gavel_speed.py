"""Simulator speed like for like with Gavel's own simulator: the same jobs (Gavel's generator,
seed 0, 5.6 jobs/h, single-GPU, 36:36:36), the same stopping rule (until jobs 4000-4999 are
done), run back to back, each in its own process; wall and CPU seconds (user + sys) of both.

Gavel runs from its checkout (2b47eb0: ``-i 360``, ECOS, ``oracle_throughputs_v2.json``; its
verbose log is piped through a line counter that also counts rounds); ours is
``benchmarks.gavel_runs.run_one`` with Gavel's round order. On a busy machine the CPU seconds are
the steadier ratio; both are printed::

    python -m benchmarks.gavel_speed --gavel GAVEL/scheduler --gavel-python GAVEL_VENV/bin/python
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

GAVEL_ARGS = [
    "-u",
    "scripts/drivers/simulate_scheduler_with_generated_jobs.py",
    "-c",
    "36:36:36",
    "-p",
    "max_min_fairness_perf",
    "--seed",
    "0",
    "-l",
    "642.8571428571428",
    "-s",
    "4000",
    "-e",
    "5000",
    "-i",
    "360",
    "--solver",
    "ECOS",
    "--throughputs_file",
    "oracle_throughputs_v2.json",
    "-v",
]
OURS = (
    "from benchmarks.gavel_runs import Run, run_one; import sys; "
    "r = run_one(Run(sys.argv[1], 'gavel:rate=5.6,jobs=25000,multi_gpu=false,seed=0', "
    "(4000, 5000), starvation_rounds=float('inf'))); "
    "print('ours', sys.argv[1], 'rounds', r['rounds'], 'jct_h', round(r['avg_jct_hours'], 3))"
)


def _timed(cmd: list[str], cwd: Path | None, stdout=None) -> tuple[float, float, subprocess.Popen]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=stdout, text=True)
    return t, before.ru_utime + before.ru_stime, proc


def _done(t: float, cpu0: float) -> tuple[float, float]:
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - t, after.ru_utime + after.ru_stime - cpu0


def gavel(scheduler: Path, python: str) -> tuple[float, float, int]:
    t, cpu0, proc = _timed([python, *GAVEL_ARGS], scheduler, stdout=subprocess.PIPE)
    stamps = set()
    for line in proc.stdout:  # "<time>]\t[Micro-task scheduled]\t..."
        if "[Micro-task scheduled]" in line:
            stamps.add(line.split("]", 1)[0])
    proc.wait()
    wall, cpu = _done(t, cpu0)
    return wall, cpu, len(stamps)


def ours(policy: str) -> tuple[float, float, int]:
    t, cpu0, proc = _timed([sys.executable, "-c", OURS, policy], None, stdout=subprocess.PIPE)
    out, _ = proc.communicate()
    wall, cpu = _done(t, cpu0)
    print(out.strip(), flush=True)
    fields = out.split()  # "ours POLICY rounds N jct_h X"
    return wall, cpu, int(fields[fields.index("rounds") + 1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--gavel", type=Path, required=True, help="Gavel's scheduler/ directory")
    ap.add_argument("--gavel-python", required=True, help="python of a venv with Gavel's deps")
    ap.add_argument("--policies", nargs="+", default=["las"])
    ap.add_argument("--reps", type=int, default=1)
    args = ap.parse_args()
    for rep in range(args.reps):
        wall, cpu, rounds = gavel(args.gavel, args.gavel_python)
        print(
            f"rep {rep}: gavel {rounds} rounds, wall {wall:.1f} s, cpu {cpu:.1f} s, "
            f"{rounds / wall:.0f} rounds/wall s, {rounds / cpu:.0f} rounds/cpu s",
            flush=True,
        )
        for p in args.policies:
            w, c, r = ours(p)
            print(
                f"rep {rep}: ours {p} {r} rounds, wall {w:.1f} s, cpu {c:.1f} s, "
                f"{r / w:.0f} rounds/wall s, {r / c:.0f} rounds/cpu s; "
                f"Gavel/ours: wall {wall / w:.1f}x, cpu {cpu / c:.1f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
