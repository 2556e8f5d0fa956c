"""Fidelity on real work: the same small workload live on a Ray cluster and in ``simulate()``.

    python benchmarks/ray_fidelity.py [--jobs 30] [--seed 1] [--round-seconds 0.5]
                                      [--cpus 1] [--port 6391] [--json OUT]

1. Starts the demo Ray cluster (``cpool ray up --demo``: 2 x 8 H800, 8 Ascend910B, 8 H100;
   Ray's CPU and memory resources small), pinned to ``--cpus`` cores of this machine (every
   raylet, Ray worker and so every job inherits the affinity: the benchmark's CPU use is
   bounded), and a real ``cpool serve --backend ray`` on it.
2. Measures the test job (``ray_fidelity_job.py``: steps of real work, numpy matrix products
   on one BLAS thread per worker; nothing in its environment says how fast it should be) on
   every (accelerator type, job size) the workload uses, through the live pool, one job at a
   time: steps/s from the job's own first and last step, and the start overhead (the
   scheduler's start decision to the first step). That separate run's rates are the
   simulator's throughput table (Gavel's JSON layout; ``load_throughputs(path)`` reads it).
3. Runs the workload live on a fresh server: N jobs, mixed types and sizes, a gang of two
   whole H800 nodes among them, submitted at their arrival times; fifo-sticky, bestfit, the
   measured table.
4. Simulates the same jobs (arrivals = the live submission times) on the pool read from the
   Ray inventory with the same policy, placement, round length and table, the measured start
   overhead as restart penalty; compares JCT = completion - submission per job, and says how
   many other benchmark jobs each one shared the pinned cores with (the simulator's devices
   are independent; here they share real cores).

Cleans up the server and the cluster it started. Timings on a shared 2-core machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from computepool.backends import ray_demo  # noqa: E402
from computepool.backends.ray_inventory import current_nodes, pool_from_nodes  # noqa: E402
from computepool.catalog.throughputs import load_throughputs  # noqa: E402
from computepool.model.workload import Workload  # noqa: E402
from computepool.policies import get_policy  # noqa: E402
from computepool.server.jobs import to_job  # noqa: E402
from computepool.sim.run import SimConfig, simulate  # noqa: E402
from tests.server.conftest import admin_token, bearer  # noqa: E402
from tests.server.serverproc import ServerProcess  # noqa: E402

JOB = Path(__file__).resolve().parent / "ray_fidelity_job.py"
JOB_TYPE = "matmul"
TYPES = ("H800", "Ascend910B", "H100")
#: The work of one step (the same on every type): REPS products of N x N float64 matrices.
WORK_ENV = {"BENCH_N": "160", "BENCH_REPS": "40"}
#: (spec fields, weight): which accelerators a job accepts.
KINDS = [
    ({"accelerator_types": ["H800"]}, 3),
    ({"accelerator_types": ["Ascend910B"]}, 2),
    ({"accelerator_types": ["H100"]}, 2),
    ({"stacks": ["cuda"]}, 2),  # H800 or H100: fifo-sticky takes the fastest with room
    ({}, 1),  # anything
]


def ts(text: str | None) -> float:
    d = datetime.fromisoformat(text)  # type: ignore[arg-type]
    return (d if d.tzinfo else d.replace(tzinfo=UTC)).timestamp()


def job_spec(steps: int, workers: int, per: int, kind: dict, name: str) -> dict:
    return {
        "name": name,
        "command": [sys.executable, str(JOB), str(steps)],
        "workers": workers,
        "accelerators_per_worker": per,
        "job_type": JOB_TYPE,
        "work": steps,
        "env": dict(WORK_ENV),
        **kind,
    }


def make_workload(
    n: int, seed: int, mean_gap_s: float, steps: tuple[int, int] = (200, 1500)
) -> list[tuple[float, dict]]:
    """(arrival offset, spec): sizes 1-8 devices, ``steps`` steps (a gang: a third to two
    thirds of the most), one gang of two whole H800 nodes in every 15 jobs."""
    lo, hi = steps
    rng = np.random.default_rng(seed)
    kinds, w = zip(*KINDS, strict=True)
    p = np.asarray(w, dtype=float) / sum(w)
    out, t = [], 0.0
    for i in range(n):
        if i % 15 == 7:
            spec = job_spec(
                int(rng.integers(hi // 3, 2 * hi // 3)),
                2,
                8,
                {"accelerator_types": ["H800"]},
                f"gang{i}",
            )
        else:
            kind = kinds[int(rng.choice(len(kinds), p=p))]
            per = int(rng.choice([1, 2, 4, 8], p=[0.35, 0.3, 0.2, 0.15]))
            spec = job_spec(int(rng.integers(lo, hi)), 1, per, kind, f"job{i}")
        out.append((round(t, 2), spec))
        t += float(rng.exponential(mean_gap_s))
    return out


def sizes_used(workload: list[tuple[float, dict]]) -> set[tuple[str, int, int]]:
    """(accelerator type, workers, per worker) pairs a measurement must cover."""
    out = set()
    for _, s in workload:
        types = s.get("accelerator_types") or list(TYPES)
        if s.get("stacks") == ["cuda"]:
            types = ["H800", "H100"]
        out |= {(a, s["workers"], s["accelerators_per_worker"]) for a in types}
    return out


class Live:
    def __init__(self, url: str, admin: dict) -> None:
        self.c = httpx.Client(base_url=url, timeout=30)
        r = self.c.post("/v1/tenants", json={"name": "bench"}, headers=admin)
        assert r.status_code in (200, 201), r.text
        self.who = bearer(self.c.post("/v1/tenants/bench/tokens", headers=admin).json()["token"])

    def submit(self, spec: dict) -> dict:
        r = self.c.post("/v1/jobs", json=spec, headers=self.who)
        assert r.status_code == 201, r.text
        return r.json()

    def wait_all(self, ids: list[int], timeout_s: float) -> dict[int, dict]:
        end, done = time.time() + timeout_s, {}
        while time.time() < end and len(done) < len(ids):
            for i in ids:
                if i not in done:
                    doc = self.c.get(f"/v1/jobs/{i}", headers=self.who).json()
                    if doc["status"] in ("succeeded", "failed", "cancelled", "rejected"):
                        done[i] = doc
            time.sleep(0.5)
        missing = [i for i in ids if i not in done]
        if missing:
            raise RuntimeError(f"jobs {missing} did not finish in {timeout_s} s")
        return done

    def job_log_events(self, i: int) -> list[dict]:
        text = self.c.get(f"/v1/jobs/{i}/logs", headers=self.who).text
        out = []
        for line in text.splitlines():
            line = line.split("] ", 1)[1] if line.startswith("[attempt") else line
            if line.startswith("{"):
                out.append(json.loads(line))
        return out


def measure(
    live: Live, combos: set[tuple[str, int, int]], steps: int, repeats: int = 1
) -> tuple[dict, list]:
    """Gavel-layout table {type: {"('matmul', sf)": {"null": steps/s}}} and start overheads.

    One job at a time: a start's overhead (a Ray worker process per rank, then the shim and the
    job's interpreter) grows when several starts share the cores, and the workload's starts
    are mostly spread out. Each (type, size) ``repeats`` times, the median rate kept: the
    machine is shared, and one run can land in a busy moment."""
    table: dict[str, dict] = {}
    overheads = []
    for a, workers, per in sorted(combos):
        rates = []
        for _ in range(repeats):
            spec = job_spec(
                steps, workers, per, {"accelerator_types": [a]}, f"measure-{a}-{workers}x{per}"
            )
            spec["job_type"] = "generic"  # the server knows no 'matmul' rates yet
            i = live.submit(spec)["id"]
            doc = live.wait_all([i], timeout_s=300)[i]
            assert doc["status"] == "succeeded", doc
            ev = live.job_log_events(i)
            starts = [e["t"] for e in ev if e["ev"] == "start"]
            ends = [e["t"] for e in ev if e["ev"] == "end"]
            rates.append(steps / (max(ends) - min(starts)))
            overheads.append(min(starts) - ts(doc["started_at"]))
        table.setdefault(a, {})[str((JOB_TYPE, workers * per))] = {"null": statistics.median(rates)}
    return table, overheads


def sharing(docs: list[dict]) -> list[float]:
    """Per job: how many other jobs of the run were running, on average over its run (from
    the live start and finish times): the pinned cores are shared that many ways more."""
    span = [(ts(d["started_at"]), ts(d["finished_at"])) for d in docs]
    out = []
    for i, (a, b) in enumerate(span):
        overlap = sum(
            max(0.0, min(b, b2) - max(a, a2)) for k, (a2, b2) in enumerate(span) if k != i
        )
        out.append(overlap / max(b - a, 1e-9))
    return out


def run_live(live: Live, workload: list[tuple[float, dict]]) -> tuple[list[int], dict]:
    t0 = time.time()
    ids = []
    for off, spec in workload:
        delay = t0 + off - time.time()
        if delay > 0:
            time.sleep(delay)
        ids.append(live.submit(spec)["id"])
    return ids, live.wait_all(ids, timeout_s=900)


def run_sim(
    pool, table_path: Path, docs: list[dict], specs: list[dict], args
) -> tuple[list[float], list[float]]:
    tp = load_throughputs(table_path, accelerators=pool.accelerators, with_pairs=False)
    t0 = min(ts(d["submitted_at"]) for d in docs)
    jobs = [
        to_job(k, "bench", 1.0, spec, ts(d["submitted_at"]) - t0)
        for k, (d, spec) in enumerate(zip(docs, specs, strict=True))
    ]
    wl = Workload.from_jobs(jobs, name="fidelity")
    cfg = SimConfig(
        round_seconds=args.round_seconds,
        restart_penalty_s=args.penalty,
        placement="bestfit",
    )
    res = simulate(pool, wl, tp, get_policy("fifo-sticky"), cfg)
    jct, wait = [0.0] * len(jobs), [0.0] * len(jobs)
    assert wl.ids is not None
    for row, job_id in enumerate(wl.ids):  # rows are in arrival order
        jct[int(job_id)] = float(res.end[row] - res.arrival[row])
        wait[int(job_id)] = float(res.first_start[row] - res.arrival[row])
    return jct, wait


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mean-gap", type=float, default=8.0, help="mean seconds between arrivals")
    ap.add_argument("--cpus", type=str, default="1", help="cores the Ray cluster is pinned to")
    ap.add_argument("--round-seconds", type=float, default=0.5)
    ap.add_argument("--measure-steps", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=3, help="measurements per (type, size)")
    ap.add_argument("--steps", type=str, default="200:1500", help="steps per job, MIN:MAX")
    ap.add_argument("--port", type=int, default=6391)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    work = Path(tempfile.mkdtemp(prefix="cpool-fidelity-"))
    lo, hi = (int(x) for x in args.steps.split(":"))
    workload = make_workload(args.jobs, args.seed, args.mean_gap, (lo, hi))
    server = None
    t_up = time.time()
    everywhere = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})  # the cluster inherits it
    try:
        ray_demo.up(args.port, client_port=args.port + 1)
    finally:
        os.sched_setaffinity(0, everywhere)  # the server and this script are not pinned
    try:
        import ray

        ray.init(address=f"127.0.0.1:{args.port}", log_to_driver=False)
        nodes = current_nodes(ray.nodes())
        ray.shutdown()
        pool = pool_from_nodes([n for n in nodes if n.alive])
        print(f"cluster up in {time.time() - t_up:.0f} s: {pool.summary()}", flush=True)
        # 1. measure the test job, then serve with the measured table
        data = work / "home"
        data.mkdir()
        url = f"sqlite:///{data / 'cpool.db'}"
        admin = bearer(admin_token(data, url))
        os.environ["RAY_ADDRESS"] = f"127.0.0.1:{args.port}"
        rs = ["--round-seconds", str(args.round_seconds), "--policy", "fifo-sticky"]
        server = ServerProcess(data, url, "--backend", "ray", *rs).start(timeout=120)
        table, overheads = measure(
            Live(server.url, admin), sizes_used(workload), args.measure_steps, args.repeats
        )
        server.stop()
        table_path = work / "throughputs.json"
        table_path.write_text(json.dumps(table, indent=1))
        args.penalty = statistics.median(overheads)
        print(
            f"measured {sum(len(v) for v in table.values())} rates; start overhead median "
            f"{args.penalty:.2f} s (min {min(overheads):.2f}, max {max(overheads):.2f})",
            flush=True,
        )
        data2 = work / "home2"
        data2.mkdir()
        url2 = f"sqlite:///{data2 / 'cpool.db'}"
        admin2 = bearer(admin_token(data2, url2))
        server = ServerProcess(
            data2, url2, "--backend", "ray", "--throughputs", str(table_path), *rs
        ).start(timeout=120)
        live = Live(server.url, admin2)
        t_live = time.time()
        ids, docs = run_live(live, workload)
        live_wall = time.time() - t_live
        step_events = [live.job_log_events(i) for i in ids]
        server.stop()
    finally:
        if server is not None:
            server.stop()
        ray_demo.down(args.port)
    ordered = [docs[i] for i in ids]
    specs = [s for _, s in workload]
    bad = [d for d in ordered if d["status"] != "succeeded"]
    if bad:
        raise SystemExit(f"live jobs did not succeed: {bad}")
    live_jct = [ts(d["finished_at"]) - ts(d["submitted_at"]) for d in ordered]
    live_wait = [ts(d["started_at"]) - ts(d["submitted_at"]) for d in ordered]
    shared = sharing(ordered)
    first_step = [min(e["t"] for e in ev if e["ev"] == "start") for ev in step_events]
    overhead = [t - ts(d["started_at"]) for t, d in zip(first_step, ordered, strict=True)]
    try:
        sim_jct, sim_wait = run_sim(pool, table_path, ordered, specs, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    diff = [abs(s - lv) / lv for s, lv in zip(sim_jct, live_jct, strict=True)]
    rows = [
        {
            "job": d["id"],
            "name": d["name"],
            "flavor": d["flavor"],
            "live_jct_s": lv,
            "sim_jct_s": s,
            "rel_diff": x,
            "live_wait_s": lw,
            "sim_wait_s": sw,
            "live_start_overhead_s": oh,
            "live_sharing": sh,
        }
        for d, lv, s, x, lw, sw, oh, sh in zip(
            ordered, live_jct, sim_jct, diff, live_wait, sim_wait, overhead, shared, strict=True
        )
    ]
    summary = {
        "jobs": len(rows),
        "median_rel_diff": statistics.median(diff),
        "p90_rel_diff": float(np.percentile(diff, 90)),
        "worst_rel_diff": max(diff),
        "mean_live_jct_s": statistics.mean(live_jct),
        "mean_sim_jct_s": statistics.mean(sim_jct),
        "live_wall_s": live_wall,
        "round_seconds": args.round_seconds,
        "start_overhead_s": args.penalty,
        "live_start_overhead_median_s": statistics.median(overhead),
        "live_start_overhead_max_s": max(overhead),
        "seed": args.seed,
        "cpus": args.cpus,
        "repeats": args.repeats,
        "mean_live_sharing": statistics.mean(shared),
        "throughputs": table,
    }
    print(
        f"{'job':>4} {'name':>7} {'flavor':>22} {'live s':>7} {'sim s':>7} {'diff':>6} "
        f"{'wait live':>9} {'wait sim':>8} {'start s':>7} {'shared':>6}"
    )
    for r in rows:
        print(
            f"{r['job']:>4} {r['name']:>7} {r['flavor']:>22} {r['live_jct_s']:7.2f} "
            f"{r['sim_jct_s']:7.2f} {100 * r['rel_diff']:5.1f}% {r['live_wait_s']:9.2f} "
            f"{r['sim_wait_s']:8.2f} {r['live_start_overhead_s']:7.2f} {r['live_sharing']:6.2f}"
        )
    print(
        f"median |diff| {100 * summary['median_rel_diff']:.1f}%, p90 "
        f"{100 * summary['p90_rel_diff']:.1f}%, worst {100 * summary['worst_rel_diff']:.1f}% "
        f"over {len(rows)} jobs (live run {live_wall:.0f} s)"
    )
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "jobs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
