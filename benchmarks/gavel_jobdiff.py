"""Job-by-job comparison with Gavel's own simulator: read a Gavel log, run the same jobs here.

Gavel's ``simulate_scheduler_with_generated_jobs.py`` with ``-v`` logs every job's dispatch,
every micro-task it schedules (round, worker type, worker ids, priority, deficit, allocation)
and every completion. This script reads that log (streamed: a multi-GPU run writes ~1 GB),
simulates the same workload with our simulator (``gavel:rate=R,jobs=N,multi_gpu=M,seed=S``:
the identical job list) and prints, for jobs of the window:

* mean JCT by gang size, Gavel vs ours;
* per job of the chosen sizes (``--sizes``, default 8): JCT, rounds run per flavor, servers
  spanned in Gavel (4 GPUs a server), mean allocation over the rounds it ran, on both sides,
  largest differences first;
* with ``--trace JOB``: both timelines round by round (Gavel's worker type, priority, deficit
  and allocation; our flavor, share and deficit).

Example (Gavel run from its ``scheduler/`` directory; see docs/simulator.md)::

    python -m benchmarks.gavel_jobdiff gavel.log --policy las-centre --starvation-rounds inf
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console

from benchmarks.gavel_runs import table

#: Gavel's worker types, in our accelerator names.
GAVEL_TYPES = {"v100": "V100", "p100": "P100", "k80": "K80"}
GPUS_PER_SERVER = 4
_TS = re.compile(r"^([0-9.e+-]+)\]\t\[([^\]]+)\]\t(.*)$")
_ALLOC = re.compile(r"\[\s*(\w+) ([0-9.e+-]+)\]")


@dataclass
class GavelJob:
    arrival: float = float("nan")
    end: float = float("nan")
    sf: int = 0
    rounds: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    servers: set[int] = field(default_factory=set)
    alloc_sum: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    timeline: list[tuple[float, str, float, float, dict[str, float]]] = field(default_factory=list)


@dataclass
class GavelLog:
    lam: float | None
    seed: int | None
    multi_gpu: bool
    jobs: dict[int, GavelJob]


def _fields(rest: str) -> dict[str, str]:
    out = {}
    for part in rest.split("\t"):
        k, _, v = part.partition(": ")
        out[k.strip()] = v
    return out


def read_gavel_log(path: Path, keep: range, trace: set[int]) -> GavelLog:
    """Parse dispatches, scheduled micro-tasks and completions of jobs in ``keep``; keep the
    round-by-round timeline of jobs in ``trace``. Pairs (space sharing) are skipped."""
    jobs: dict[int, GavelJob] = defaultdict(GavelJob)
    lam = seed = None
    multi = False
    with path.open(errors="replace") as fh:
        for line in fh:
            if lam is None and "Configuration:" in line:
                m = re.search(r"lam=([0-9.]+)", line)
                lam = float(m.group(1)) if m else None
                m = re.search(r"seed=(\d+)", line)
                seed = int(m.group(1)) if m else None
                continue
            if "[Micro-task succeeded]" in line or "]\t[" not in line:
                continue
            m = _TS.match(line)
            if m is None:
                continue
            ts, kind, rest = float(m.group(1)), m.group(2), m.group(3)
            f = _fields(rest)
            jid = f.get("Job ID", "")
            if not jid.isdigit():
                continue
            j = int(jid)
            if j not in keep:
                if kind == "Micro-task scheduled" and "," in f.get("Worker ID(s)", ""):
                    multi = True
                continue
            job = jobs[j]
            if kind == "Job dispatched":
                job.arrival = ts
            elif kind == "Job succeeded":
                job.end = ts
            elif kind == "Micro-task scheduled":
                ids = [int(x) for x in f["Worker ID(s)"].split(",") if x]
                multi = multi or len(ids) > 1
                wt = f["Worker type"]
                job.sf = len(ids)
                job.rounds[wt] += 1
                job.servers.update(i // GPUS_PER_SERVER for i in ids)
                alloc = {k: float(v) for k, v in _ALLOC.findall(f.get("Allocation", ""))}
                for k, v in alloc.items():
                    job.alloc_sum[k] += v
                if j in trace:
                    prio, dfc = float(f["Priority"]), float(f["Deficit"])
                    job.timeline.append((ts, wt, prio, dfc, alloc))
    return GavelLog(lam, seed, multi, dict(jobs))


@dataclass
class OurJob:
    rounds: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    share_sum: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    timeline: list[tuple[float, str, dict[str, float], dict[str, float]]] = field(
        default_factory=list
    )


def run_ours(args: argparse.Namespace, spec: str, keep: range, trace: set[int]):
    """Simulate ``spec`` and record, per round, what each window job ran on and its share."""
    from computepool.policies import get_policy
    from computepool.sim.run import SimConfig, simulate
    from computepool.sim.runner import load_inputs

    inputs = load_inputs("gavel-36x3", spec)
    names = [GAVEL_TYPES_INV[f.accelerator] for f in inputs.pool.flavors]
    ours: dict[int, OurJob] = defaultdict(OurJob)

    def on_round(s) -> None:
        a = s.active
        now = s.clock.now()
        sel = np.nonzero((a.job >= keep.start) & (a.job < keep.stop))[0]
        for r in sel.tolist():
            f = int(a.running[r])
            if f < 0:
                continue
            j = int(a.job[r])
            o = ours[j]
            o.rounds[names[f]] += 1
            for k, name in enumerate(names):
                o.share_sum[name] += float(a.share[r, k])
            if j in trace:
                share = {n: float(a.share[r, k]) for k, n in enumerate(names)}
                dfc = {n: float(a.deficit[r, k]) for k, n in enumerate(names)}
                o.timeline.append((now, names[f], share, dfc))

    cfg = SimConfig(
        window=(keep.start, keep.stop),
        starvation_rounds=args.starvation_rounds,
        gavel_admission=args.gavel_admission,
    )
    res = simulate(
        inputs.pool,
        inputs.workload,
        inputs.throughputs,
        get_policy(args.policy),
        cfg,
        on_round=on_round,
    )
    return inputs.workload, res, ours


GAVEL_TYPES_INV = {v: k for k, v in GAVEL_TYPES.items()}


def _mean_alloc(total: dict[str, float], rounds: int) -> str:
    if rounds == 0:
        return "-"
    return "/".join(f"{total.get(t, 0.0) / rounds:.2f}" for t in ("v100", "p100", "k80"))


def _rounds(r: dict[str, int]) -> str:
    return "/".join(str(r.get(t, 0)) for t in ("v100", "p100", "k80"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("gavel_log", type=Path)
    ap.add_argument("--policy", default="las-centre")
    ap.add_argument("--starvation-rounds", type=float, default=float("inf"))
    ap.add_argument("--window", default="4000:5000")
    ap.add_argument(
        "--gavel-admission",
        action="store_true",
        help="Gavel's simulator: a new job waits for an allocation that includes it",
    )
    ap.add_argument("--jobs", type=int, default=25000, help="jobs generated on our side")
    ap.add_argument("--rate", type=float, help="jobs/h (default: from the log's lam)")
    ap.add_argument("--seed", type=int, help="default: from the log")
    ap.add_argument("--sizes", type=int, nargs="+", default=[8])
    ap.add_argument("--top", type=int, default=20, help="per-job rows shown")
    ap.add_argument("--trace", type=int, nargs="*", default=[], help="job ids to trace")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    a, b = (int(x) for x in args.window.split(":"))
    keep, trace = range(a, b), set(args.trace)
    g = read_gavel_log(args.gavel_log, keep, trace)
    rate = args.rate if args.rate is not None else round(3600.0 / float(g.lam or 0.0), 6)
    seed = args.seed if args.seed is not None else int(g.seed or 0)
    mg = "true" if g.multi_gpu else "false"
    spec = f"gavel:rate={rate:g},jobs={args.jobs},multi_gpu={mg},seed={seed}"
    w, res, ours = run_ours(args, spec, keep, trace)
    ids = np.arange(a, b)
    sf = w.scale_factor[ids]
    g_jct = np.array([g.jobs[j].end - g.jobs[j].arrival if j in g.jobs else np.nan for j in ids])
    o_jct = res.jct[ids]
    arr_diff = np.array([abs(g.jobs[j].arrival - w.arrival[j]) if j in g.jobs else 0 for j in ids])
    con = Console(width=200)
    con.print(
        f"workload {spec}, policy {args.policy}, guard {args.starvation_rounds}, "
        f"Gavel admission {args.gavel_admission}"
    )
    con.print(f"arrivals differ by at most {np.nanmax(arr_diff):.3g} s over the window")
    rows = []
    for k in [*sorted(set(sf.tolist())), 0]:
        m = sf == k if k else np.ones(len(ids), dtype=bool)
        gm, om = np.nanmean(g_jct[m]) / 3600, np.nanmean(o_jct[m]) / 3600
        rows.append(
            [str(k or "all"), str(int(m.sum())), f"{gm:.2f}", f"{om:.2f}", f"{om / gm - 1:+.1%}"]
        )
    con.print(
        table("mean JCT (h) by GPUs per job", ["GPUs", "jobs", "Gavel", "ours", "diff"], rows)
    )
    sel = [i for i in range(len(ids)) if sf[i] in args.sizes]
    sel.sort(key=lambda i: -abs(np.nan_to_num(o_jct[i] - g_jct[i])))
    per = []
    out_jobs = []
    for i in sel:
        j = int(ids[i])
        gj, oj = g.jobs.get(j, GavelJob()), ours.get(j, OurJob())
        g_r, o_r = sum(gj.rounds.values()), sum(oj.rounds.values())
        rec = {
            "job": j,
            "gpus": int(sf[i]),
            "arrival_h": float(w.arrival[j] / 3600),
            "gavel_jct_h": float(g_jct[i] / 3600),
            "ours_jct_h": float(o_jct[i] / 3600),
            "gavel_rounds": dict(gj.rounds),
            "ours_rounds": dict(oj.rounds),
            "gavel_servers": len(gj.servers),
            "gavel_mean_alloc": _mean_alloc(gj.alloc_sum, g_r),
            "ours_mean_share": _mean_alloc(oj.share_sum, o_r),
        }
        out_jobs.append(rec)
        per.append(
            [
                str(j),
                f"{rec['arrival_h']:.1f}",
                f"{rec['gavel_jct_h']:.1f}",
                f"{rec['ours_jct_h']:.1f}",
                _rounds(gj.rounds),
                _rounds(oj.rounds),
                str(len(gj.servers)),
                rec["gavel_mean_alloc"],
                rec["ours_mean_share"],
            ]
        )
    cols = ["job", "arrival h", "Gavel JCT", "ours JCT", "Gavel rounds v/p/k", "ours rounds v/p/k"]
    cols += ["Gavel servers", "Gavel alloc v/p/k", "our share v/p/k"]
    con.print(
        table(f"jobs with {args.sizes} GPUs, largest JCT difference first", cols, per[: args.top])
    )
    for j in sorted(trace):
        gt, ot = g.jobs.get(j, GavelJob()).timeline, ours.get(j, OurJob()).timeline
        con.print(f"job {j}: Gavel ran {len(gt)} rounds, ours {len(ot)}")
        for n in range(max(len(gt), len(ot))):
            left = right = ""
            if n < len(gt):
                ts, wt, p, d, al = gt[n]
                left = f"{ts / 3600:9.2f} h {wt:4s} prio {p:10.4g} def {d:10.4g} alloc {_fmt(al)}"
            if n < len(ot):
                ts, fl, sh, df = ot[n]
                right = f"{ts / 3600:9.2f} h {fl:4s} share {_fmt(sh)} def {df.get(fl, 0.0):10.4g}"
            con.print(f"  {left:75s} | {right}")
    if args.json:
        args.json.write_text(json.dumps({"workload": spec, "jobs": out_jobs}, indent=1) + "\n")


def _fmt(d: dict[str, float]) -> str:
    return "/".join(f"{d.get(t, 0.0):.3f}" for t in ("v100", "p100", "k80"))


if __name__ == "__main__":
    main()
