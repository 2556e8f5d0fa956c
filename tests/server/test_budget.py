"""Budgets hold: a submission reserves accelerators x max_hours, parallel submissions never
overshoot (on the store's own locks, not just this process's), a job is stopped at its time
limit, and its reservation gives way to what it really used when it ends."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

from computepool.catalog.pools import load_pool
from computepool.server import store
from computepool.server.budget import BudgetExceeded, committed, dearest_price
from computepool.server.db import JobRow, sessions
from computepool.server.runtime import open_store
from computepool.server.schemas import JobSpec, TenantIn
from computepool.server.writer import Submission, write_batch
from tests.server.conftest import TEST_POOL

ONE_JOB_H = 4 * 0.25  # 4 accelerators x 15 minutes


def test_parallel_submissions_never_overshoot_the_budget(live):
    a = live.tenant("acme", budget_accel_hours=3 * ONE_JOB_H)
    spec = {"command": "sleep 30", "accelerators_per_worker": 4, "max_hours": 0.25}
    with ThreadPoolExecutor(30) as ex:
        answers = list(ex.map(lambda _: live.submit(a, **spec), range(30)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] * 3 + [403] * 27
    refusal = next(r.json() for r in answers if r.status_code == 403)
    assert refusal["errors"][0]["field"] == "tenant"
    reason = refusal["error"]
    assert "budget 3 accelerator-hours" in reason and "reserved 3" in reason
    assert "used 0" in reason and "requested 1" in reason
    jobs = [live.job(a, r.json()["id"]) for r in answers if r.status_code == 201]
    assert all(j["spec"]["max_hours"] == 0.25 for j in jobs)
    for j in jobs:
        live.client.post(f"/v1/jobs/{j['id']}/cancel", headers=a)
    for j in jobs:  # cancelled: the reservations give way to the (small) use
        live.wait_status(a, j["id"], "cancelled")
    assert live.submit(a, **spec).status_code == 201


def _store(db_url, tmp_path, **tenant):
    engine = open_store(tmp_path, db_url)
    S = sessions(engine)
    with S() as s:
        row, _ = store.upsert_tenant(s, TenantIn(name="acme", **tenant), "test")
        s.commit()
        p = store.Principal(0, "tenant", row.id, "acme")
    return engine, S, p


def test_the_store_serialises_reservations_of_separate_transactions(db_url, tmp_path):
    """30 writers, each its own connection and transaction, no lock of this process: the
    database's locks (BEGIN IMMEDIATE / SELECT ... FOR UPDATE) keep the budget."""
    engine, S, p = _store(db_url, tmp_path, budget_accel_hours=3.0)
    pool = load_pool(TEST_POOL)
    spec = JobSpec(command="true", accelerators_per_worker=2, max_hours=0.5)
    go = threading.Barrier(30)

    def one(_: int):
        go.wait()
        with S() as s:
            r = write_batch(s, [Submission(p, spec, None, Future())], pool)[0]
            s.commit()
            return r

    try:
        with ThreadPoolExecutor(30) as ex:
            results = list(ex.map(one, range(30)))
        stored = [r for r in results if not isinstance(r, Exception)]
        assert len(stored) == 3
        assert all(isinstance(r, BudgetExceeded) for r in results if isinstance(r, Exception))
        with S() as s:
            c = committed(s, pool, p.tenant_id, time.time())
            assert (c.used_hours, c.reserved_hours) == (0.0, 3.0)
            assert s.query(JobRow).count() == 3
    finally:
        engine.dispose()


def test_a_budgeted_tenant_needs_a_time_limit_and_the_tenant_default_gives_one(live):
    a = live.tenant("acme", budget_accel_hours=10)
    r = live.submit(a, command="true")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "max_hours"
    live.tenant("acme", budget_accel_hours=10, default_max_hours=0.5)
    r = live.submit(a, command="true", workers=2)
    assert r.status_code == 201
    with live.client.app.state.ctx.sessions() as s:
        row = s.get(JobRow, r.json()["id"])
        assert row.time_limit_s == 1800 and row.reserved_accel_hours == 1.0


def test_a_job_is_stopped_at_its_time_limit(live):
    a = live.tenant("acme", budget_accel_hours=1.0)
    j = live.submit(a, command="exec sleep 60", workers=2, max_hours=1.5 / 3600).json()["id"]
    job = live.wait_status(a, j, "failed", timeout=15)
    assert job["reason"].startswith("time limit")
    held = job["allocations"][0]
    ran = datetime.fromisoformat(held["ended_at"]) - datetime.fromisoformat(held["started_at"])
    assert 1.5 <= ran.total_seconds() <= 4  # the limit, plus at most a round or so
    svc = live.client.app.state.ctx.service
    with svc.sessions() as s:  # the reservation is gone; what it used counts
        c = committed(s, svc.pool, s.get(JobRow, j).tenant_id, time.time())
        assert c.reserved_hours == 0.0 and 0 < c.used_hours < 2 * 3.5 / 3600


def test_a_usd_budget_reserves_at_the_dearest_price_the_job_may_run_at(live):
    svc = live.client.app.state.ctx.service
    spec = {"command": "sleep 30", "accelerators_per_worker": 4, "max_hours": 0.25}
    price = dearest_price(JobSpec(**spec), svc.feasibility)
    assert price > 0
    a = live.tenant("acme", budget_usd=2.5 * 4 * 0.25 * price)
    codes = [live.submit(a, **spec).status_code for _ in range(3)]
    assert codes == [201, 201, 403]
    r = live.submit(a, **spec)
    assert "USD" in r.json()["error"] and "requested" in r.json()["error"]
    for j in live.client.get("/v1/jobs", headers=a).json()["jobs"]:
        live.client.post(f"/v1/jobs/{j['id']}/cancel", headers=a)
