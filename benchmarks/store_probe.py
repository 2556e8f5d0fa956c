"""Probe a store the way a hostile tenant did: two servers on one store, parallel
over-budget submissions, a crash and a take-over.

    python benchmarks/store_probe.py [--db sqlite|postgresql|both] [--json OUT]

For each store (a SQLite file, and a throwaway PostgreSQL from the machine's binaries) it
starts a real ``cpool serve`` on loopback, starts a second one on the same store (it must
refuse, naming the holder), fires 30 parallel submissions by a tenant whose budget holds 3 of
them, kills the first server with SIGKILL while its jobs run, starts another (it takes over
the lease and adopts the jobs) and counts how often each job started. Prints one row per
store; cleans up everything it started.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.pgcluster import ThrowawayPostgres  # noqa: E402
from tests.server.conftest import admin_token, bearer, kill_leftovers  # noqa: E402
from tests.server.serverproc import ServerProcess  # noqa: E402

ARGS = ("--config", "gavel-36x3", "--policy", "fifo-agnostic", "--round-seconds", "0.2",
        "--grace-seconds", "1", "--lease-seconds", "5")  # fmt: skip
JOB = 'echo "$CPOOL_JOB_ID" >> {marks}/starts; sleep 3'


def _tenant(url: str, admin: str) -> dict[str, str]:
    h = bearer(admin)
    body = {"name": "mallory", "budget_accel_hours": 3.0}
    httpx.post(url + "/v1/tenants", json=body, headers=h).raise_for_status()
    return bearer(httpx.post(url + "/v1/tenants/mallory/tokens", headers=h).json()["token"])


def probe(db: str, work: Path) -> dict:
    pg = None
    if db == "postgresql":
        pg = ThrowawayPostgres().start()
        url = pg.new_database()
    else:
        url = f"sqlite:///{work / 'cpool.db'}"
    data, marks = work / "data", work / "marks"
    marks.mkdir()
    admin = admin_token(data, url)
    first = ServerProcess(data, url, *ARGS, log=work / "first.log")
    second = ServerProcess(data, url, *ARGS, log=work / "second.log")
    third = ServerProcess(data, url, *ARGS, log=work / "third.log")
    out: dict = {"db": db}
    try:
        first.start()
        t = _tenant(first.url, admin)
        try:
            second.start()
            out["second_server"] = "started (two writers!)"
        except RuntimeError:
            said = [ln for ln in (work / "second.log").read_text().splitlines() if ln.strip()]
            out["second_server"] = f"exit {second.proc.returncode}"
            out["message"] = " ".join(said)[-220:]
        spec = {"command": JOB.format(marks=marks), "accelerators_per_worker": 4,
                "max_hours": 0.25}  # fmt: skip
        with ThreadPoolExecutor(30) as ex:
            codes = list(
                ex.map(
                    lambda _: (
                        httpx.post(
                            first.url + "/v1/jobs", json=spec, headers=t, timeout=30
                        ).status_code
                    ),
                    range(30),
                )
            )
        out["attempts"] = len(codes)
        out["accepted"] = codes.count(201)
        out["refused_403"] = codes.count(403)
        ids = []
        for j in httpx.get(first.url + "/v1/jobs", headers=t).json()["jobs"]:
            ids.append(j["id"])
        time.sleep(1.0)  # they run
        first.kill9()
        t0 = time.time()
        third.start()
        out["takeover_s"] = round(time.time() - t0, 2)
        took = [ln for ln in (work / "third.log").read_text().splitlines() if "took over" in ln]
        # the holder was known dead (same machine, pid gone) before its lease expired
        out["before_expiry"] = bool(took) and "expires in" in took[0]
        end = time.time() + 60
        while time.time() < end:
            got = [httpx.get(f"{third.url}/v1/jobs/{i}", headers=t).json() for i in ids]
            if all(j["status"] in ("succeeded", "failed", "cancelled") for j in got):
                break
            time.sleep(0.2)
        out["outcomes"] = dict(Counter(j["status"] for j in got))
        starts = Counter((marks / "starts").read_text().split()) if ids else Counter()
        out["max_starts_per_job"] = max(starts.values(), default=0)
        usage = httpx.get(third.url + "/v1/usage", headers=t).json()["total"]
        out["used_accel_hours"] = round(usage["accelerator_hours"], 4)
    finally:
        for s in (first, second, third):
            s.stop()
        kill_leftovers(data)
        if pg is not None:
            pg.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    dbs = ["sqlite", "postgresql"] if a.db == "both" else [a.db]
    rows = []
    for db in dbs:
        with tempfile.TemporaryDirectory(prefix="cpool-probe-") as tmp:
            rows.append(probe(db, Path(tmp)))
    cols = ("db", "second_server", "attempts", "accepted", "refused_403", "takeover_s",
            "before_expiry", "outcomes", "max_starts_per_job", "used_accel_hours")  # fmt: skip
    print("| " + " | ".join(cols) + " |")
    print("|" + " --- |" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    for r in rows:
        if "message" in r:
            print(f"{r['db']}: second server said: {r['message']}")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
