"""Federation figures (BENCHMARKS.md "Federation: agents per cluster (issue 18)").

1. Dispatch latency, submission -> worker start (the worker's own clock), one job at a time:
   through an agent (control plane + 3 agents on loopback) vs the local backend directly
   (one ``cpool serve --backend local`` over the same pool). p50 / p99 over --jobs.
2. Scheduling throughput over 3 agents: --burst one-device jobs submitted at once; starts/s
   from the first submission to the last worker start, and time until all succeeded.
3. Jobs lost or doubled over failure runs: --failures rounds of (a long job per cluster; kill
   -9 one agent, SIGSTOP another past its lease then SIGCONT, cut the third's link), counting
   jobs that never ran again (lost) and jobs with two runs alive at once (doubled).

    python benchmarks/federation_dispatch.py --jobs 40 --burst 150 --failures 2
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from computepool.federation.faults import Proxy, overlaps, runs_of, worker_argv
from computepool.federation.loopback import DEMO_CLUSTERS, Loopback, cpool, free_port

STAMP = 'date +%s.%N > "{d}/$CPOOL_JOB_ID"'


def percentiles(xs: list[float]) -> dict:
    a = np.asarray(xs)
    return {"n": len(xs), "p50_ms": float(np.percentile(a, 50) * 1e3),
            "p99_ms": float(np.percentile(a, 99) * 1e3), "max_ms": float(a.max() * 1e3)}  # fmt: skip


def latencies(url: str, token: str, stamps: Path, jobs: int) -> list[float]:
    out = []
    auth = {"Authorization": f"Bearer {token}"}
    for i in range(jobs):
        spec = {"name": f"lat{i}", "command": STAMP.format(d=stamps)}
        t0 = time.time()
        r = httpx.post(url + "/v1/jobs", json=spec, headers=auth, timeout=10)
        r.raise_for_status()
        jid = r.json()["id"]
        f = stamps / str(jid)
        end = time.monotonic() + 30
        while not (f.exists() and f.read_text().strip()) and time.monotonic() < end:
            time.sleep(0.005)
        out.append(float(f.read_text()) - t0)
        time.sleep(0.1)
    return out


def local_server(root: Path, round_s: float) -> tuple[subprocess.Popen, str, str]:
    """``cpool serve --backend local`` over the demo pool, with one tenant's token."""
    lb = Loopback(root, DEMO_CLUSTERS, tenants={"bench": []}).setup()
    port = free_port()
    args = cpool(
        "serve", "--data-dir", str(lb.cp_dir), "--pool", str(root / "pool.yaml"),
        "--backend", "local", "--port", str(port), "--round-seconds", str(round_s),
        "--sandbox", "off", "--allow-unsandboxed", "--log-level", "warning",
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("CPOOL_")}
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    Loopback._wait(lambda: httpx.get(url + "/healthz").status_code == 200, 60, "serve", p)
    return p, url, lb.tokens["bench"]


def burst(root: Path, stamps: Path, n: int, round_s: float) -> dict:
    """Submit ``n`` one-device jobs while no cluster is registered, then start the 3 agents:
    starts/s from the moment they start to the last worker start (placement, dispatch,
    completions reported and the next wave placed)."""
    lb = Loopback(root, DEMO_CLUSTERS, lease_s=5.0, round_s=round_s, tenants={"bench": []})
    lb.setup()
    try:
        lb.start_server()
        auth = lb.auth(lb.tokens["bench"])
        with httpx.Client(base_url=lb.url, headers=auth, timeout=30) as c:
            ids = [
                c.post(
                    "/v1/jobs", json={"name": f"b{i}", "command": STAMP.format(d=stamps)}
                ).json()["id"]
                for i in range(n)
            ]
            t0 = time.time()
            for cl in DEMO_CLUSTERS:
                lb.start_agent(cl.name)
            lb.wait_clusters([cl.name for cl in DEMO_CLUSTERS])
            ready = time.time() - t0
            starts = [stamps / str(i) for i in ids]
            end = time.monotonic() + 300
            while time.monotonic() < end and not all(p.exists() for p in starts):
                time.sleep(0.1)
            first = min(float(p.read_text()) for p in starts)
            last = max(float(p.read_text()) for p in starts)
            by: dict[str, int] = {}
            for i in ids:
                f = c.get(f"/v1/jobs/{i}").json()["flavor"]
                by[f] = by.get(f, 0) + 1
    finally:
        lb.close()
    return {"jobs": n, "clusters_ready_s": ready, "first_start_s": first - t0,
            "last_start_s": last - t0, "starts_per_s": n / (last - first),
            "by_flavor": by}  # fmt: skip


def failures(root: Path, rounds: int) -> dict:
    lost = doubled = total = 0
    for k in range(rounds):
        lb = Loopback(root / f"f{k}", DEMO_CLUSTERS, lease_s=2.0, grace_s=1.0,
                      tenants={"bench": []}).setup()  # fmt: skip
        trace = lb.root / "trace"
        trace.mkdir()
        proxies = {}
        try:
            lb.start_server()
            for c in DEMO_CLUSTERS:
                proxies[c.name] = Proxy(lb.port)
                lb.start_agent(c.name, f"http://127.0.0.1:{proxies[c.name].port}")
            lb.wait_clusters([c.name for c in DEMO_CLUSTERS])
            ids = [lb.submit("bench", {"name": f"long{i}", "command": worker_argv(trace, 25),
                                       "accelerators_per_worker": 8}) for i in range(5)]  # fmt: skip
            time.sleep(3)
            names = [c.name for c in DEMO_CLUSTERS]
            lb.signal_agent(names[0], signal.SIGKILL)
            lb.signal_agent(names[1], signal.SIGSTOP)
            proxies[names[2]].cut()
            time.sleep(6)
            lb.signal_agent(names[1], signal.SIGCONT)
            proxies[names[2]].restore()
            lb.agents.pop(names[0])
            lb.start_agent(names[0], f"http://127.0.0.1:{proxies[names[0]].port}")
            end = time.monotonic() + 120
            while time.monotonic() < end:
                st = [lb.job("bench", i)["status"] for i in ids]
                if all(s == "succeeded" for s in st):
                    break
                time.sleep(0.5)
            for i in ids:
                total += 1
                runs = runs_of(trace, i)
                lost += lb.job("bench", i)["status"] != "succeeded"
                doubled += bool(overlaps(runs))
        finally:
            lb.close()
            for p in proxies.values():
                p.close()
    return {"rounds": rounds, "jobs": total, "lost": lost, "doubled": doubled}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=40)
    ap.add_argument("--burst", type=int, default=150)
    ap.add_argument("--failures", type=int, default=2)
    ap.add_argument("--round-seconds", type=float, default=0.2)
    args = ap.parse_args()
    out: dict = {}
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        stamps = root / "stamps-local"
        stamps.mkdir()
        p, url, tok = local_server(root / "local", args.round_seconds)
        try:
            out["local"] = percentiles(latencies(url, tok, stamps, args.jobs))
        finally:
            p.terminate()
            p.wait(timeout=30)
        lb = Loopback(root / "fed", DEMO_CLUSTERS, lease_s=5.0, round_s=args.round_seconds,
                      tenants={"bench": []}).setup()  # fmt: skip
        try:
            lb.start_server()
            for c in DEMO_CLUSTERS:
                lb.start_agent(c.name)
            lb.wait_clusters([c.name for c in DEMO_CLUSTERS])
            stamps = root / "stamps-fed"
            stamps.mkdir()
            out["agent"] = percentiles(latencies(lb.url, lb.tokens["bench"], stamps, args.jobs))
        finally:
            lb.close()
        stamps = root / "stamps-burst"
        stamps.mkdir()
        out["burst"] = burst(root / "burst", stamps, args.burst, args.round_seconds)
        if args.failures:
            out["failures"] = failures(root, args.failures)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
