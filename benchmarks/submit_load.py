"""Submission throughput and latency against a running ``cpool serve`` on loopback.

    python benchmarks/submit_load.py [--db sqlite|postgresql|both] [--seconds 10]
                                     [--connections 8] [--json OUT]

Starts a real server (SQLite file, or a throwaway PostgreSQL from the machine's binaries),
creates a tenant whose quota is 0 (its jobs are stored, picked up and admitted by the
scheduler loop, but never started, so no process launches compete for the 2 cores), and
drives ``POST /v1/jobs`` with wrk (bounded: a fixed duration and connection count) from the
same machine. Prints requests/s and latency percentiles; cleans up everything it started.
Needs ``wrk`` (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.pgcluster import ThrowawayPostgres  # noqa: E402
from tests.server.conftest import admin_token, kill_leftovers  # noqa: E402
from tests.server.serverproc import ServerProcess  # noqa: E402

LUA = """
wrk.method = "POST"
wrk.body = '{"command": "true", "name": "bench", "work": 60}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
"""

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    assert m, text
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(out: str) -> dict:
    lat = {p: _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests": total,
        "requests_per_s": rps,
        "p50_ms": lat.get("50"),
        "p90_ms": lat.get("90"),
        "p99_ms": lat.get("99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_one(db: str, seconds: int, connections: int, work: Path) -> dict:
    pg = None
    if db == "postgresql":
        pg = ThrowawayPostgres().start()
        url = pg.new_database()
    else:
        url = f"sqlite:///{work / 'cpool.db'}"
    data = work / "data"
    server = ServerProcess(data, url, "--config", "gavel-36x3", "--log-level", "warning")
    try:
        admin = admin_token(data, url)
        server.start()
        h = {"Authorization": f"Bearer {admin}"}
        httpx.post(
            server.url + "/v1/tenants",
            json={"name": "bench", "quotas": {"*": {"nominal": 0}}},
            headers=h,
        ).raise_for_status()
        token = httpx.post(server.url + "/v1/tenants/bench/tokens", headers=h).json()["token"]
        script = work / "post.lua"
        script.write_text(LUA % token)
        # warm-up, then the measured run
        subprocess.run(
            ["wrk", "-t1", "-c4", "-d2s", "-s", str(script), server.url + "/v1/jobs"],
            check=True,
            capture_output=True,
        )
        cpu0 = cpu_seconds(server.proc.pid)
        load0 = os.getloadavg()[0]
        out = subprocess.run(
            [
                "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                "-s", str(script), server.url + "/v1/jobs",
            ],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        cpu = cpu_seconds(server.proc.pid) - cpu0
        res = parse_wrk(out)
        # load-independent: CPU the server spent per 1,000 submissions (all its threads)
        res["server_cpu_ms_per_request"] = 1000.0 * cpu / max(res["requests"], 1)
        res["load_average_before"] = load0
        jobs = httpx.get(
            server.url + "/v1/jobs", params={"limit": 1, "status": ["admitted"]}, headers=h
        ).json()["jobs"]
        res.update(db=db, connections=connections, seconds=seconds, last_admitted=jobs[:1])
        return res
    finally:
        server.stop()
        kill_leftovers(data)
        if pg is not None:
            pg.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    results = []
    for db in ["sqlite", "postgresql"] if args.db == "both" else [args.db]:
        with tempfile.TemporaryDirectory(prefix="cpool-bench-") as tmp:
            r = run_one(db, args.seconds, args.connections, Path(tmp))
        results.append(r)
        print(
            f"{db:10s} {r['requests_per_s']:8.0f} req/s  p50 {r['p50_ms']:.1f} ms  "
            f"p90 {r['p90_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms  "
            f"({r['requests']} requests, non-2xx {r['non_2xx']}, {args.connections} connections; "
            f"server CPU {r['server_cpu_ms_per_request']:.2f} ms/request; "
            f"load average {r['load_average_before']:.1f})"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
