"""Failover time of a highly available control plane: two ``cpool serve --standby`` on one
throwaway PostgreSQL store, the leader killed (kill -9) again and again.

    python benchmarks/failover.py [--kills 10] [--lease-seconds 6] [--round-seconds 1]
                                  [--remote] [--json OUT]

Each kill: a burst of jobs goes to both servers (some are running when the leader dies), the
leader is killed with SIGKILL, and a probe job is submitted to the standby at once. Measured
from the kill: until the standby's ``/healthz`` says ``leader``, and until the probe job's
worker has started (it writes its own start time). The killed server is started again as
the new standby before the next kill. At the end every job must have succeeded, each worker
started once (the workers' own records) with one attempt in the store: lost and doubled jobs
are counted (goal 0).

On one machine a standby sees that the leader's process is gone and takes over without
waiting for the lease to expire. ``--remote`` emulates a leader on another machine: its lease
row is given another machine's identity, so the standby must wait for the lease to expire
(the worst case is about ``--lease-seconds``). Cleans up everything it started.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import update

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from computepool.server.db import LeaseRow  # noqa: E402
from computepool.server.runtime import open_store  # noqa: E402
from tests.pgcluster import ThrowawayPostgres  # noqa: E402
from tests.server.conftest import admin_token, bearer, kill_leftovers  # noqa: E402
from tests.server.haproc import MARKED_JOB, doubled, ha_server, role, starts  # noqa: E402
from tests.server.serverproc import ServerProcess, shared_marks  # noqa: E402

PROBE = 'date +%s.%N > {marks}/probe-{i}; echo "$CPOOL_JOB_ID 0 $CPOOL_ATTEMPT" >> {marks}/starts'


def _post(server: ServerProcess, headers: dict, key: str, spec: dict) -> int:
    for _ in range(100):
        try:
            r = httpx.post(
                server.url + "/v1/jobs",
                json=spec,
                headers={**headers, "Idempotency-Key": key},
                timeout=5,
            )
            if r.status_code in (200, 201):
                return int(r.json()["id"])
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{server.url} took no submission {key}")


def _burst(servers: list[ServerProcess], headers: dict, marks: Path, i: int) -> list[int]:
    ids: list[int] = []

    def send(s: ServerProcess, part: int) -> None:
        for n in range(part, 6, 2):
            spec = {
                "name": f"b{i}-{n}",
                "command": MARKED_JOB.format(marks=marks, secs=1.0 + n % 3),
                "workdir": str(marks),
                "workers": 1 + n % 2,
            }
            ids.append(_post(s, headers, f"b{i}-{n}", spec))

    ts = [threading.Thread(target=send, args=(s, p)) for p, s in enumerate(servers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return ids


def _as_remote(url: str, data: Path) -> None:
    """The lease holder's identity becomes another machine's: no presumed death by pid."""
    engine = open_store(data, url)
    with engine.begin() as conn:
        conn.execute(update(LeaseRow).values(machine="another-boot|pid:[1]|1", host="elsewhere"))
    engine.dispose()


def _wait(pred, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


def run(args: argparse.Namespace, pg: ThrowawayPostgres, tmp: Path) -> dict:
    url = pg.new_database()
    data, marks = tmp / "data", shared_marks(tmp / "marks")
    admin = admin_token(data, url)

    def server(n: int) -> ServerProcess:
        return ha_server(data, url, tmp / f"server{n}.log", args.lease_seconds, args.round_seconds)

    group = [server(0).start(), None]
    _wait(lambda: role(group[0]) == "leader", 30, "the first leader")
    group[1] = server(1).start()
    h = bearer(admin)
    httpx.post(group[0].url + "/v1/tenants", json={"name": "acme"}, headers=h).raise_for_status()
    tok = httpx.post(group[0].url + "/v1/tenants/acme/tokens", headers=h).json()["token"]
    headers = bearer(tok)
    to_leader, to_start, ids = [], [], []
    try:
        for i in range(args.kills):
            leader, standby = group
            ids += _burst([leader, standby], headers, marks, i)
            before = len(starts(marks))
            _wait(lambda b=before: len(starts(marks)) > b, 30, "a job to start")
            if args.remote:
                _as_remote(url, data)
            t0 = time.time()
            leader.kill9()
            probe = {"name": f"probe{i}", "command": PROBE.format(marks=marks, i=i)}
            probe["workdir"] = str(marks)
            ids.append(_post(standby, headers, f"probe{i}", probe))
            _wait(lambda s=standby: role(s) == "leader", 60, "the standby to lead")
            to_leader.append(time.time() - t0)
            f = marks / f"probe-{i}"
            _wait(lambda f=f: f.exists() and f.read_text().strip(), 60, "the probe to start")
            to_start.append(float(f.read_text()) - t0)
            print(f"kill {i + 1}: leader after {to_leader[-1]:.2f} s, "
                  f"a new job started after {to_start[-1]:.2f} s", flush=True)  # fmt: skip
            group = [standby, server(i % 2).start()]  # the killed one comes back as standby
        end = time.time() + 120
        while True:
            docs = [httpx.get(group[0].url + f"/v1/jobs/{j}", headers=headers).json()
                    for j in ids]  # fmt: skip
            if all(d["status"] in ("succeeded", "failed", "cancelled") for d in docs):
                break
            if time.time() > end:
                break
            time.sleep(0.5)
    finally:
        for s in group:
            if s is not None:
                s.stop()
        kill_leftovers(data)
    lost = [d["id"] for d in docs if d["status"] != "succeeded"]
    again = {j for j, _ in doubled(marks)} | {
        d["id"] for d in docs if d["attempts"] > 1 or len(d.get("allocations", [])) > 1
    }
    again |= {s[0] for s in starts(marks) if s[2] != "1"}
    return {
        "kills": args.kills,
        "lease_seconds": args.lease_seconds,
        "round_seconds": args.round_seconds,
        "remote": args.remote,
        "jobs": len(ids),
        "leader_s_median": statistics.median(to_leader),
        "leader_s_max": max(to_leader),
        "new_job_started_s_median": statistics.median(to_start),
        "new_job_started_s_max": max(to_start),
        "jobs_lost": len(lost),
        "jobs_doubled": len(again),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--lease-seconds", type=float, default=6.0)
    ap.add_argument("--round-seconds", type=float, default=1.0)
    ap.add_argument("--remote", action="store_true", help="emulate a leader on another machine")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()
    if not 1 <= args.kills <= 100:
        ap.error("--kills must be between 1 and 100")
    pg = ThrowawayPostgres().start()
    try:
        with tempfile.TemporaryDirectory(prefix="cpool-failover-") as tmp:
            out = run(args, pg, Path(tmp))
    finally:
        pg.stop()
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
