"""One job's failure is that job's failure: a spec that cannot start, an exit record that does
not parse or a worker that cannot be restarted fails that job with the reason, and the round
(and the server's start) goes on for every other job."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from computepool.backends import attempts as att
from computepool.backends.shim import write_json
from computepool.server.db import JobEventRow, JobRow, LedgerRow, TenantRow, make_engine
from tests.server.conftest import LivePool, bearer, kill_leftovers, open_live

HUGE = "x" * (10 << 20)


def insert_jobs(url: str, tenant: str, specs: list[dict]) -> list[int]:
    """Store jobs as the scheduler finds them, in one transaction (one round sees them all),
    past the API's checks: a stored spec is hostile input too."""
    engine = make_engine(url)
    now = time.time()
    with engine.begin() as conn:
        tid = conn.execute(select(TenantRow.id).where(TenantRow.name == tenant)).scalar_one()
        rows = [
            {
                "tenant_id": tid,
                "name": f"j{i}",
                "status": "queued",
                "spec": spec,
                "accelerators": 1,
                "submitted_at": now,
                "reason": "",
                "attempts": 0,
                "preemptions": 0,
                "cancel_requested": False,
            }
            for i, spec in enumerate(specs)
        ]
        ids = list(conn.execute(insert(JobRow).returning(JobRow.id), rows).scalars())
        conn.execute(
            insert(JobEventRow),
            [{"job_id": j, "at": now, "kind": "queued", "detail": ""} for j in ids],
        )
    engine.dispose()
    return ids


def ledger_jobs(url: str) -> set[int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        out = set(conn.execute(select(LedgerRow.job_id)).scalars())
    engine.dispose()
    return out


def kinds(job: dict) -> list[str]:
    return [e["kind"] for e in job["events"]]


@pytest.fixture
def pool(tmp_path):
    data, url = tmp_path / "data", f"sqlite:///{tmp_path / 'cpool.db'}"
    client, tok = open_live(data, url, allow_unsandboxed=True)
    try:
        with client:
            live = LivePool(client, bearer(tok), data)
            yield live, url, live.tenant("acme")
    finally:
        kill_leftovers(data)


BAD = {
    "workdir missing": ({"command": "true", "workdir": "/no/such/dir"}, "does not exist"),
    "workdir is a file": ({"command": "true", "workdir": "/etc/hostname"}, "not a directory"),
    "NUL in command": ({"command": ["/bin/echo", "a\x00b"]}, "NUL byte"),
    "NUL in env": ({"command": "true", "env": {"A": "x\x00y"}}, "NUL byte"),
    "10 MB command": ({"command": ["/bin/echo", HUGE]}, "longer than"),
    "10 MB env": ({"command": "true", "env": {"BIG": HUGE}}, "longer than"),
}


def test_specs_that_cannot_start_fail_alone_and_the_round_goes_on(pool):
    live, url, a = pool
    good = [{"command": "echo fine"} for _ in range(3)]
    specs = [good[0], *(spec for spec, _ in BAD.values()), *good[1:]]
    ids = insert_jobs(url, "acme", specs)
    good_ids = [ids[0], *ids[-2:]]
    bad_ids = ids[1:-2]
    for j in good_ids:
        job = live.wait_status(a, j, "succeeded")
        assert kinds(job) == ["queued", "admitted", "running", "succeeded"]
        assert len(job["allocations"]) == 1 and job["allocations"][0]["ended_at"] is not None
    for j, (what, (_, why)) in zip(bad_ids, BAD.items(), strict=True):
        job = live.wait_status(a, j, "failed")
        assert why in job["reason"], (what, job["reason"])
        assert kinds(job)[-1] == "failed" and why in job["events"][-1]["detail"], what
        assert job["allocations"][0]["ended_at"] is not None, what
    assert set(good_ids) <= ledger_jobs(url)
    # the pool goes on: a job submitted afterwards runs
    later = live.submit(a, command="echo later").json()["id"]
    live.wait_status(a, later, "succeeded")


def test_a_bad_start_in_a_round_keeps_the_others_started_with_it(pool):
    live, url, a = pool
    ids = insert_jobs(
        url, "acme", [{"command": "exec sleep 30"}, {"command": "true", "workdir": "/nope"}]
    )
    job = live.wait_status(a, ids[0], "running")
    assert kinds(job) == ["queued", "admitted", "running"]
    assert job["allocations"] and job["allocations"][0]["workers"]
    assert "does not exist" in live.wait_status(a, ids[1], "failed")["reason"]


def test_a_stored_spec_that_cannot_be_read_fails_alone(tmp_path):
    data, url = tmp_path / "data", f"sqlite:///{tmp_path / 'cpool.db'}"
    unreadable = [{"workers": 1}, {"command": "true", "workers": "many"}, {"command": 5}]
    try:
        client, tok = open_live(data, url, stop_jobs_on_exit=False)
        with client:
            live = LivePool(client, bearer(tok), data)
            a = live.tenant("acme")
            ids = insert_jobs(url, "acme", [{"command": "echo fine"}, *unreadable])
            live.wait_status(a, ids[0], "succeeded")
            for j in ids[1:]:
                job = live.wait_status(a, j, "failed")
                assert "stored spec cannot be read" in job["reason"], job["reason"]
            keep = live.submit(a, command="exec sleep 30").json()["id"]
            live.wait_status(a, keep, "running")
            # a job of the store left running whose spec became unreadable while down
            engine = make_engine(url)
            with engine.begin() as conn:
                conn.execute(update(JobRow).where(JobRow.id == ids[1]).values(status="running"))
            engine.dispose()
        client, _ = open_live(data, url)
        with client:  # the server starts, the readable job is adopted
            live = LivePool(client, bearer(tok), data)
            assert live.job(a, keep)["status"] == "running"
            assert live.job(a, ids[1])["status"] == "failed"
    finally:
        kill_leftovers(data)


def _running_attempt(data: Path, job_id: int) -> Path:
    return att.attempt_dirs(data / "runs", str(job_id))[-1]


def test_a_restart_fails_unrecoverable_jobs_and_starts(tmp_path):
    data, url = tmp_path / "data", f"sqlite:///{tmp_path / 'cpool.db'}"
    try:
        client, tok = open_live(data, url, stop_jobs_on_exit=False, allow_unsandboxed=True)
        with client:
            live = LivePool(client, bearer(tok), data)
            a = live.tenant("acme")
            keep = live.submit(a, command="exec sleep 30").json()["id"]
            workdir = tmp_path / "wd"
            workdir.mkdir()
            gone = live.submit(a, command="exec sleep 30", workdir=str(workdir)).json()["id"]
            garbled = live.submit(a, command="exec sleep 30").json()["id"]
            for j in (keep, gone, garbled):
                live.wait_status(a, j, "running")
        # while the server is down: one job's launch was cut short (its rank never claimed)
        # and its workdir is gone; another's records are garbage
        d = _running_attempt(data, gone)
        att.kill_attempt(att.read_attempt(d))
        time.sleep(0.3)
        for name in ("rank-0.claim", "rank-0.pid", "rank-0.exit"):
            (d / name).unlink(missing_ok=True)
        workdir.rmdir()
        g = _running_attempt(data, garbled)
        meta = json.loads((g / "meta.json").read_text())
        write_json(g / "meta.json", {**meta, "workers": "all of them"})
        client, _ = open_live(data, url, allow_unsandboxed=True)
        with client:  # the server starts
            live = LivePool(client, bearer(tok), data)
            assert live.job(a, keep)["status"] == "running"
            assert "adopted" in kinds(live.job(a, keep))
            j = live.job(a, gone)
            assert j["status"] == "failed" and "does not exist" in j["reason"], j["reason"]
            j = live.job(a, garbled)
            assert j["status"] == "failed" and "meta.json" in j["reason"], j["reason"]
            later = live.submit(a, command="echo later").json()["id"]
            live.wait_status(a, later, "succeeded")
    finally:
        kill_leftovers(data)
