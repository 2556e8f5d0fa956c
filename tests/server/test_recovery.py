"""Restarts in-process: jobs left running are adopted, a cancel accepted before the restart is
carried out, and nothing of a finished job is left running."""

from __future__ import annotations

import time

from sqlalchemy import update

from computepool.backends import attempts as att
from computepool.server.db import JobRow, make_engine
from tests.server.conftest import LivePool, bearer, kill_leftovers, open_live


def _tenant(client, admin, name):
    client.post("/v1/tenants", json={"name": name}, headers=admin)
    return bearer(client.post(f"/v1/tenants/{name}/tokens", headers=admin).json()["token"])


def _alive(data, job_id):
    recs = [att.read_attempt(d) for d in att.attempt_dirs(data / "runs", str(job_id))]
    return [r.pid for rec in recs if rec for r in rec.ranks if r.alive]


def test_restart_adopts_running_jobs_and_carries_out_pending_cancels(db_url, tmp_path):
    data = tmp_path / "data"
    try:
        client, tok = open_live(data, db_url, stop_jobs_on_exit=False)
        with client:
            live = LivePool(client, bearer(tok), data)
            a = _tenant(client, live.admin, "acme")
            keep = live.submit(a, command="sleep 3", workers=2).json()["id"]
            drop = live.submit(a, command="exec sleep 60").json()["id"]
            live.wait_status(a, keep, "running")
            live.wait_status(a, drop, "running")
            live.wait(lambda: len(_alive(data, keep)) == 2 and _alive(data, drop), what="pids")
            pids_drop = _alive(data, drop)
        # the server is gone, its jobs run on; a cancel reached the store just before
        engine = make_engine(db_url)
        with engine.begin() as conn:
            conn.execute(update(JobRow).where(JobRow.id == drop).values(cancel_requested=True))
        engine.dispose()
        assert _alive(data, keep) and _alive(data, drop)
        client, _ = open_live(data, db_url)
        with client:
            live = LivePool(client, bearer(tok), data)
            j = live.job(a, keep)
            assert j["status"] == "running"
            assert "adopted" in [e["kind"] for e in j["events"]]
            d = live.job(a, drop)
            assert d["status"] == "cancelled" and d["allocations"][0]["end_reason"] == "cancelled"
            live.wait(lambda: not any(att.alive(p, None) for p in pids_drop), 5, "cancelled gone")
            j = live.wait_status(a, keep, "succeeded")
            assert j["attempts"] == 1 and len(j["allocations"]) == 1
            time.sleep(0.2)
            assert live.job(a, keep)["status"] == "succeeded"
    finally:
        kill_leftovers(data)
