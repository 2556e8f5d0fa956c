"""A highly available control plane: several real ``cpool serve`` on one PostgreSQL store.

Both servers serve the API; the lease holder schedules. Submissions go to both in bursts;
the leader is killed (kill -9) or paused past its lease (SIGSTOP, then SIGCONT). The standby
leads within 10 s, adopts the running workers, and no job is lost or started twice: the
workers' own records (a line per start) and the store (attempts, placement intervals) agree.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from computepool.server.runtime import open_store
from tests.server.conftest import admin_token, bearer, kill_leftovers
from tests.server.haproc import (
    MARKED_JOB,
    doubled,
    ha_server,
    pause,
    resume,
    role,
    starts,
    wait_role,
)
from tests.server.serverproc import ServerProcess, shared_marks

FINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture
def pg_url(postgres, tmp_path) -> str:
    name = postgres.migrated_template(lambda u: open_store(tmp_path, u).dispose())
    postgres.truncate_all(postgres.url(name))
    return postgres.url(name)


class Client:
    """A tenant that sends each request to whichever server answers (any of them may)."""

    def __init__(self, servers: list[ServerProcess], token: str) -> None:
        self.servers, self.headers = servers, bearer(token)

    def request(self, method: str, path: str, **kw) -> httpx.Response:
        deadline = time.time() + 30
        while True:
            for s in self.servers:
                if s.proc is None or s.proc.poll() is not None:
                    continue
                try:
                    r = httpx.request(method, s.url + path, timeout=2, **kw)
                except httpx.HTTPError:
                    continue
                if r.status_code < 500:
                    return r
            assert time.time() < deadline, f"no server answered {method} {path}"
            time.sleep(0.05)

    def submit(self, key: str, spec: dict, via: ServerProcess) -> int:
        r = Client([via, *self.servers], "").request(
            "POST", "/v1/jobs", json=spec, headers={**self.headers, "Idempotency-Key": key}
        )
        assert r.status_code in (200, 201), r.text
        return r.json()["id"]

    def job(self, job_id: int) -> dict:
        return self.request("GET", f"/v1/jobs/{job_id}", headers=self.headers).json()


def _tenant(server: ServerProcess, admin: str, name: str) -> str:
    h = bearer(admin)
    httpx.post(server.url + "/v1/tenants", json={"name": name}, headers=h).raise_for_status()
    return httpx.post(server.url + f"/v1/tenants/{name}/tokens", headers=h).json()["token"]


def _burst(
    client: Client, servers: list[ServerProcess], marks: Path, tag: str, n: int, secs: float = 1.5
) -> dict:
    """``n`` submissions (``secs`` to ``secs`` + 1 s long), alternately to each server, from
    two threads at once."""
    ids: dict[str, int] = {}

    def send(part: int) -> None:
        for i in range(part, n, 2):
            spec = {
                "name": f"{tag}{i}",
                "command": MARKED_JOB.format(marks=marks, secs=secs + (i % 3) * 0.5),
                "workdir": str(marks),
                "workers": 1 + i % 2,
            }
            ids[f"{tag}{i}"] = client.submit(f"{tag}{i}", spec, servers[i % len(servers)])

    threads = [threading.Thread(target=send, args=(p,)) for p in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ids


def _settle(client: Client, ids: dict[str, int], timeout: float = 60) -> list[dict]:
    end = time.time() + timeout
    while True:
        docs = [client.job(j) for j in ids.values()]
        if all(d["status"] in FINAL for d in docs):
            return docs
        assert time.time() < end, [d["status"] for d in docs if d["status"] not in FINAL]
        time.sleep(0.2)


def _check_once(docs: list[dict], ids: dict[str, int], marks: Path) -> None:
    """No job lost, none started twice: by the store and by the workers' own records."""
    assert len(set(ids.values())) == len(ids)
    assert [d["status"] for d in docs] == ["succeeded"] * len(docs)
    assert doubled(marks) == {}
    want = {(str(d["id"]), str(r)) for d in docs for r in range(d["spec"]["workers"])}
    assert {s[:2] for s in starts(marks)} == want
    assert {s[2] for s in starts(marks)} == {"1"}  # first attempt each: never restarted
    for d in docs:
        assert d["attempts"] == 1 and len(d["allocations"]) == 1, d


def _group(tmp_path: Path, url: str, n: int = 2) -> tuple[Path, Path, list[ServerProcess]]:
    data, marks = tmp_path / "data", shared_marks(tmp_path / "marks")
    servers = [ha_server(data, url, tmp_path / f"server{i}.log") for i in range(n)]
    return data, marks, servers


@pytest.mark.timeout(120)
def test_kill_9_of_the_leader_a_standby_leads_within_10_s_nothing_lost_or_doubled(pg_url, tmp_path):
    data, marks, (a, b) = _group(tmp_path, pg_url)
    admin = admin_token(data, pg_url)
    try:
        a.start()
        wait_role(a, "leader", 10)
        b.start()
        assert role(b) == "standby" and role(a) == "leader"
        client = Client([a, b], _tenant(b, admin, "acme"))  # admin writes via the standby
        ids = _burst(client, [a, b], marks, "x", 24, secs=8.0)  # still running at the kill
        end = time.time() + 20
        while len(starts(marks)) < 4:  # some are running when the leader dies
            assert time.time() < end
            time.sleep(0.05)
        seen = httpx.get(b.url + "/v1/pool", headers=client.headers).json()  # from the store
        assert sum(f["busy"] for f in seen["flavors"]) > 0
        page = httpx.get(b.url + "/", headers=bearer(admin)).text  # the dashboard too
        assert "server-role" in page and "standby" in page
        assert "server-role" not in httpx.get(a.url + "/", headers=bearer(admin)).text
        a.kill9()
        took = wait_role(b, "leader", 10)
        ids |= _burst(client, [b], marks, "y", 6)  # the new leader schedules new ones too
        docs = _settle(client, ids)
    finally:
        for s in (a, b):
            s.stop()
        kill_leftovers(data)
    assert took < 10
    _check_once(docs, ids, marks)
    adopted = [d for d in docs if "adopted" in [e["kind"] for e in d["events"]]]
    assert adopted, "the new leader adopted the jobs that were running"
    said = b.log.read_text()
    assert "took over the writer lease" in said and "recovered" in said


@pytest.mark.timeout(120)
def test_a_leader_paused_past_its_lease_is_fenced_and_starts_nothing(pg_url, tmp_path):
    data, marks, (a, b) = _group(tmp_path, pg_url)
    admin = admin_token(data, pg_url)
    try:
        a.start()
        wait_role(a, "leader", 10)
        b.start()
        client = Client([a, b], _tenant(a, admin, "acme"))
        ids = _burst(client, [a, b], marks, "x", 12)
        end = time.time() + 20
        while len(starts(marks)) < 2:
            assert time.time() < end
            time.sleep(0.05)
        pause(a)  # past its lease (2 s): b takes over and adopts a's workers
        wait_role(b, "leader", 10)
        ids |= _burst(client, [b], marks, "y", 8)  # queued while a sleeps, a would start them
        resume(a)
        assert a.proc is not None and a.proc.wait(timeout=20) == 1  # deposed: exits, saying so
        docs = _settle(client, ids)
    finally:
        for s in (a, b):
            resume(s) if s.proc is not None and s.proc.poll() is None else None
            s.stop()
        kill_leftovers(data)
    _check_once(docs, ids, marks)
    said = a.log.read_text()
    assert "lost the writer lease of store" in said and "writes nothing more" in said


@pytest.mark.timeout(120)
def test_a_job_submitted_through_a_standby_starts_without_waiting_for_a_round(pg_url, tmp_path):
    data, marks = tmp_path / "data", shared_marks(tmp_path / "marks")
    a, b = (ha_server(data, pg_url, tmp_path / f"s{i}.log", round_s=60) for i in range(2))
    admin = admin_token(data, pg_url)
    try:
        a.start()
        wait_role(a, "leader", 10)
        b.start()
        client = Client([b], _tenant(b, admin, "acme"))
        time.sleep(1.0)  # the leader's loop now sleeps until its next (60 s) round
        t0 = time.monotonic()
        spec = {"command": MARKED_JOB.format(marks=marks, secs=60), "workdir": str(marks)}
        j = client.submit("one", spec, b)
        while not starts(marks):
            assert time.monotonic() - t0 < 10, "the leader did not hear of the submission"
            time.sleep(0.02)
        assert role(b) == "standby"
        t0 = time.monotonic()
        r = client.request("POST", f"/v1/jobs/{j}/cancel", headers=client.headers)
        assert r.status_code == 202, r.text
        while client.job(j)["status"] != "cancelled":
            assert time.monotonic() - t0 < 10, "the leader did not hear of the cancel request"
            time.sleep(0.05)
    finally:
        for s in (a, b):
            s.stop()
        kill_leftovers(data)


def test_standby_on_an_sqlite_store_is_refused_clearly(tmp_path):
    url = f"sqlite:///{tmp_path / 'cpool.db'}"
    r = subprocess.run(
        [sys.executable, "-m", "computepool.cli.app", "serve", "--standby", "--db", url,
         "--data-dir", str(tmp_path / "data"), "--port", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    said = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 1
    assert "SQLite file, which one server serves alone" in said and "PostgreSQL" in said
    assert not (tmp_path / "cpool.db").exists()  # refused before touching the store


def test_a_local_backend_standby_waits_only_behind_a_leader_on_this_machine():
    from computepool.server.ha import foreign_holder
    from computepool.server.lease import Holder, machine_identity

    here = Holder("x", "this-host", 1, machine_identity(), 0.0, 1e18, 1)
    assert foreign_holder(here) is None and foreign_holder(None) is None
    there = Holder("x", "gpu-7", 1, "another-boot|pid:[1]|1", 0.0, 1e18, 1)
    said = foreign_holder(there)
    assert said is not None and "host gpu-7" in said and "same --data-dir" in said
