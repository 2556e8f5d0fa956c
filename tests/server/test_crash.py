"""Crash safety: SIGKILL a real ``cpool serve`` at random moments and restart it.

Jobs record every start and end in files of their own. After the storm every job has
succeeded, each started exactly once (no job lost, none run twice), and the store agrees.
The server runs ``fifo-agnostic``, which never preempts: under ``fifo`` a running job may
move to a faster flavor that frees up (a deliberate restart), which would blur what these
tests check, that the control plane itself never starts a job twice.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import admin_token, bearer, kill_leftovers
from tests.server.serverproc import ServerProcess, shared_marks

JOB = (
    'echo "$CPOOL_JOB_ID $CPOOL_WORKER_RANK $CPOOL_ATTEMPT" >> {marks}/starts; '
    "sleep {secs}; "
    'echo "$CPOOL_JOB_ID $CPOOL_WORKER_RANK" >> {marks}/ends'
)


class Tenant:
    """A client that retries each submission with its idempotency key until it lands."""

    def __init__(self, server: ServerProcess, token: str) -> None:
        self.server, self.headers = server, bearer(token)

    def request(self, method: str, path: str, headers: dict | None = None, **kw) -> httpx.Response:
        deadline = time.time() + 60
        while True:
            try:
                r = httpx.request(
                    method, self.server.url + path, headers=headers or self.headers, timeout=5, **kw
                )
                if r.status_code < 500:
                    return r
            except httpx.HTTPError:
                if time.time() > deadline:
                    raise
            time.sleep(0.1)

    def submit(self, key: str, spec: dict) -> int:
        r = self.request(
            "POST", "/v1/jobs", json=spec, headers={**self.headers, "Idempotency-Key": key}
        )
        assert r.status_code in (200, 201), r.text
        return r.json()["id"]


def _setup_tenants(server: ServerProcess, admin: str) -> list[Tenant]:
    out = []
    for name in ("acme", "bolt"):
        h = bearer(admin)
        httpx.post(server.url + "/v1/tenants", json={"name": name}, headers=h).raise_for_status()
        tok = httpx.post(server.url + f"/v1/tenants/{name}/tokens", headers=h).json()["token"]
        out.append(Tenant(server, tok))
    return out


@pytest.mark.timeout(240)
def test_kill_9_at_random_moments_loses_and_duplicates_nothing(db_url, tmp_path):
    rng = random.Random(7)
    data, marks = tmp_path / "data", shared_marks(tmp_path / "marks")
    admin = admin_token(data, db_url)
    server = ServerProcess(
        data,
        db_url,
        "--config",
        "gavel-36x3",
        "--policy",
        "fifo-agnostic",
        "--round-seconds",
        "0.1",
        "--grace-seconds",
        "1",
    )
    specs = []
    for i in range(16):
        workers = rng.choice([1, 1, 2, 3])
        secs = round(rng.uniform(1.0, 5.0), 2)
        specs.append(
            (
                f"job-{i}",
                {
                    "name": f"j{i}",
                    "command": JOB.format(marks=marks, secs=secs),
                    "workdir": str(marks),
                    "workers": workers,
                    "accelerators_per_worker": rng.choice([1, 2, 4]),
                },
            )
        )
    ids: dict[str, int] = {}
    try:
        server.start()
        tenants = _setup_tenants(server, admin)

        def submit_all():
            for n, (key, spec) in enumerate(specs):
                ids[key] = tenants[n % 2].submit(key, spec)
                time.sleep(rng.uniform(0.0, 0.15))

        submitter = threading.Thread(target=submit_all)
        submitter.start()
        for _ in range(3):  # crash, stay down a moment (jobs go on ending), come back
            time.sleep(rng.uniform(0.3, 1.2))
            server.kill9()
            time.sleep(rng.uniform(0.0, 1.0))
            server.start()
        submitter.join()

        def all_done() -> bool:
            docs = [
                tenants[n % 2].request("GET", f"/v1/jobs/{ids[k]}").json()
                for n, (k, _) in enumerate(specs)
            ]
            return all(d["status"] in ("succeeded", "failed", "cancelled") for d in docs)

        end = time.time() + 90
        while not all_done():
            assert time.time() < end, "jobs did not finish"
            time.sleep(0.2)
        docs = [
            tenants[n % 2].request("GET", f"/v1/jobs/{ids[k]}").json()
            for n, (k, _) in enumerate(specs)
        ]
    finally:
        server.stop()
        kill_leftovers(data)
    assert len(set(ids.values())) == len(specs)  # one job per idempotency key
    assert [d["status"] for d in docs] == ["succeeded"] * len(specs)
    starts = Counter(
        tuple(line.split()[:2]) for line in (marks / "starts").read_text().splitlines()
    )
    ends = Counter(tuple(line.split()) for line in (marks / "ends").read_text().splitlines())
    expected = Counter((str(ids[k]), str(r)) for k, s in specs for r in range(s["workers"]))
    assert starts == expected, "every worker of every job started exactly once"
    assert ends == expected
    attempts = {line.split()[2] for line in (marks / "starts").read_text().splitlines()}
    assert attempts == {"1"}
    for d in docs:  # the store saw each job run once, with one closed placement interval
        assert d["attempts"] == 1 and len(d["allocations"]) == 1
        assert d["allocations"][0]["ended_at"] is not None
    log = Path(server.log).read_text()
    assert "recovered" in log


@pytest.mark.timeout(120)
def test_job_that_ends_while_the_server_is_down_is_not_rerun(tmp_path):
    data, marks = tmp_path / "data", shared_marks(tmp_path / "marks")
    url = f"sqlite:///{tmp_path / 'cpool.db'}"
    admin = admin_token(data, url)
    server = ServerProcess(
        data, url, "--config", "gavel-36x3", "--policy", "fifo-agnostic", "--round-seconds", "0.1"
    )
    try:
        server.start()
        (acme, _) = _setup_tenants(server, admin)
        quick = acme.submit(
            "q", {"command": JOB.format(marks=marks, secs=0.5), "workdir": str(marks)}
        )
        # long enough to outlast a restart on a busy machine (8 s did not always)
        slow = acme.submit(
            "s", {"command": JOB.format(marks=marks, secs=15), "workdir": str(marks)}
        )
        end = time.time() + 20
        while len((marks / "starts").read_text().splitlines()) < 2:
            assert time.time() < end
            time.sleep(0.05)
        server.kill9()
        time.sleep(1.0)  # quick ends while the server is down; slow is still running
        server.start()
        q = acme.request("GET", f"/v1/jobs/{quick}").json()
        s = acme.request("GET", f"/v1/jobs/{slow}").json()
        assert q["status"] == "succeeded"
        assert s["status"] == "running"
        assert "adopted" in [e["kind"] for e in s["events"]]
        end = time.time() + 30
        while acme.request("GET", f"/v1/jobs/{slow}").json()["status"] != "succeeded":
            assert time.time() < end
            time.sleep(0.1)
    finally:
        server.stop()
        kill_leftovers(data)
    starts = (marks / "starts").read_text().splitlines()
    assert sorted(s.split()[0] for s in starts) == sorted([str(quick), str(slow)])
