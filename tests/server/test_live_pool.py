"""The live pool end to end: real processes, quotas with borrowing and reclaim, budgets,
cancellation, failures, logs, metering and metrics."""

import json
import time

import pytest

from computepool.backends import attempts as att
from computepool.catalog.pools import load_pool
from tests.server.conftest import TEST_POOL

SLEEPER = "echo started; exec sleep 60"
V100 = {"accelerator_types": ["V100"], "accelerators_per_worker": 4}


def _pids(live, job_id):
    out = []
    for d in att.attempt_dirs(live.data_dir / "runs", str(job_id)):
        rec = att.read_attempt(d)
        out += [(r.pid, r.alive) for r in rec.ranks] if rec else []
    return out


def test_borrowing_and_reclaim_with_real_processes(live):
    cohort = {"cohort": "auto", "quotas": {"V100": {"nominal": 8}}}
    a = live.tenant("acme", **cohort)
    b = live.tenant("bolt", **cohort)
    # acme takes its 8 and borrows bolt's idle 8: four 4-accelerator jobs run
    ids = [live.submit(a, command=SLEEPER, **V100).json()["id"] for _ in range(5)]
    live.wait(
        lambda: sum(live.job(a, i)["status"] == "running" for i in ids) == 4, what="4 running"
    )
    time.sleep(0.3)
    assert [live.job(a, i)["status"] for i in ids].count("running") == 4
    # bolt comes back for its nominal quota: one of acme's borrowed jobs is preempted
    bj = live.submit(b, command=SLEEPER, **V100).json()["id"]
    live.wait_status(b, bj, "running")
    states = [live.job(a, i) for i in ids]
    assert sum(s["status"] == "running" for s in states) == 3
    victim = next(s for s in states if s["preemptions"] == 1)
    kinds = [e["kind"] for e in victim["events"]]
    assert kinds[-2:] == ["preempted", "requeued"]
    assert victim["allocations"][0]["end_reason"] == "preempted"
    # its process really got SIGTERM and is gone
    live.wait(lambda: not any(alive for _, alive in _pids(live, victim["id"])), 5, "victim gone")
    # running processes hold exactly the quota: 12 for acme (8 + 4 borrowed), 4 for bolt
    pool = live.client.get("/v1/pool", headers=a).json()
    busy = {f["flavor"]: f["busy"] for f in pool["flavors"]}
    assert busy["us-central/V100"] == 16
    assert all(f["services"] == 0 for f in pool["flavors"])  # no service replicas here


def test_budget_is_enforced_at_admission(live_sqlite):
    live = live_sqlite
    a = live.tenant("acme", budget_accel_hours=0.01)  # 36 accelerator-seconds
    # reserves 4 x 3.6 s; uses 4 x about 1 s
    j = live.submit(a, command="sleep 1", accelerators_per_worker=4, max_hours=0.001).json()["id"]
    live.wait_status(a, j, "succeeded")
    live.client.post(  # the budget is lowered below what it used
        "/v1/tenants", json={"name": "acme", "budget_accel_hours": 0.0005}, headers=live.admin
    )
    r = live.submit(a, command="true", max_hours=0.0001)
    assert r.status_code == 403 and r.json()["errors"][0]["field"] == "tenant"
    # raising the budget lets it submit again
    live.client.post(
        "/v1/tenants", json={"name": "acme", "budget_accel_hours": 10}, headers=live.admin
    )
    assert live.submit(a, command="true", max_hours=0.1).status_code == 201


def test_cancel_a_running_job_kills_its_processes(live):
    a = live.tenant("acme")
    j = live.submit(a, command=SLEEPER, workers=2).json()["id"]
    live.wait_status(a, j, "running")
    live.wait(lambda: len(_pids(live, j)) == 2 and all(p for p, _ in _pids(live, j)), what="pids")
    pids = [p for p, _ in _pids(live, j)]
    assert live.client.post(f"/v1/jobs/{j}/cancel", headers=a).status_code == 202
    job = live.wait_status(a, j, "cancelled")
    assert job["finished_at"] and job["allocations"][0]["end_reason"] == "cancelled"
    live.wait(lambda: not any(att.alive(p, None) for p in pids), 5, "workers gone")


def test_failed_job_keeps_its_exit_code_and_logs(live_sqlite):
    live = live_sqlite
    a = live.tenant("acme")
    j = live.submit(a, command="echo about to fail; echo oops >&2; exit 7").json()["id"]
    job = live.wait_status(a, j, "failed")
    assert job["exit_code"] == 7
    assert [e["kind"] for e in job["events"]] == ["queued", "admitted", "running", "failed"]
    text = live.client.get(f"/v1/jobs/{j}/logs", headers=a).text
    assert "about to fail" in text and "oops" in text


def test_job_sees_its_slots_and_cpool_variables(live_sqlite):
    live = live_sqlite
    a = live.tenant("acme")
    dump = "import json, os; e = {k: v for k, v in os.environ.items() if k.startswith(('CPOOL_', 'CUDA_'))}; e['ckpt_is_dir'] = os.path.isdir(e['CPOOL_CHECKPOINT_DIR']); print(json.dumps(e))"
    j = live.submit(
        a,
        command=["python3", "-c", dump],
        workers=2,
        accelerators_per_worker=2,
        env={"MY_FLAG": "1"},
    ).json()["id"]
    job = live.wait_status(a, j, "succeeded")
    lines = [
        ln.split("] ", 1)[1]
        for ln in live.client.get(f"/v1/jobs/{j}/logs", headers=a).text.splitlines()
    ]
    envs = [json.loads(ln) for ln in lines]
    assert {e["CPOOL_WORKER_RANK"] for e in envs} == {"0", "1"}
    assert all(e["CPOOL_JOB_ID"] == str(j) and e["CPOOL_WORLD_SIZE"] == "2" for e in envs)
    placed = {(w[0], ",".join(map(str, w[1]))) for w in job["allocations"][0]["workers"]}
    assert {(e["CPOOL_NODE"], e["CUDA_VISIBLE_DEVICES"]) for e in envs} == placed
    assert all(e["ckpt_is_dir"] for e in envs)  # as the worker sees it (in its sandbox)
    assert (live.data_dir / "checkpoints" / str(j)).is_dir()


def test_logs_follow_streams_until_the_job_ends(live_sqlite):
    live = live_sqlite
    a = live.tenant("acme")
    j = live.submit(a, command="for i in 1 2 3; do echo line $i; sleep 0.2; done").json()["id"]
    with live.client.stream("GET", f"/v1/jobs/{j}/logs", params={"follow": True}, headers=a) as r:
        text = "".join(r.iter_text())
    assert text.splitlines() == ["line 1", "line 2", "line 3"]
    assert live.job(a, j)["status"] == "succeeded"


def test_usage_meters_each_placement_interval(live):
    a = live.tenant("acme")
    b = live.tenant("bolt")
    j = live.submit(
        a, command="sleep 1", accelerators_per_worker=4, accelerator_types=["K80"]
    ).json()["id"]
    job = live.wait_status(a, j, "succeeded")
    (alloc,) = job["allocations"]
    u = live.client.get("/v1/usage", headers=a).json()
    (row,) = u["rows"]
    assert row["tenant"] == "acme" and row["flavor"] == "us-central/K80" and row["jobs"] == 1
    from datetime import datetime

    secs = (
        datetime.fromisoformat(alloc["ended_at"]) - datetime.fromisoformat(alloc["started_at"])
    ).total_seconds()
    assert abs(row["accelerator_hours"] - 4 * secs / 3600) < 1e-6
    assert 4 * 1.0 / 3600 <= row["accelerator_hours"] < 4 * 5.0 / 3600
    # energy = TDP x PUE x time; carbon = energy x grid intensity; cost = hours x price
    pool = load_pool(TEST_POOL)
    k80, region = pool.accelerators["K80"], pool.regions["us-central"]
    kwh = row["accelerator_hours"] * k80.tdp_w / 1000 * region.pue
    assert kwh > 0 and abs(row["energy_kwh"] - kwh) < 1e-9
    assert abs(row["carbon_kg"] - kwh * region.carbon_g_per_kwh / 1000) < 1e-9
    assert abs(row["cost_usd"] - row["accelerator_hours"] * k80.hourly_price) < 1e-9
    assert row["cost_usd"] > 0
    assert live.client.get("/v1/usage", headers=b).json()["rows"] == []
    assert (
        live.client.get("/v1/usage", params={"since": "1s"}, headers=a).json()["total"][
            "accelerator_hours"
        ]
        < row["accelerator_hours"]
    )


def test_metrics_endpoint(live_sqlite):
    live = live_sqlite
    a = live.tenant("acme")
    j = live.submit(a, command="true").json()["id"]
    live.wait_status(a, j, "succeeded")
    text = live.client.get("/metrics", headers=live.admin).text  # per-tenant series: admin
    for name in (
        'cpool_queue_length{tenant="acme"}',
        'cpool_flavor_utilisation{flavor="us-central/V100"}',
        "cpool_admission_wait_seconds_count 1.0",
        "cpool_scheduler_round_seconds_count",
        'cpool_job_events_total{kind="succeeded"} 1.0',
        'cpool_submissions_total{tenant="acme"} 1.0',
    ):
        assert name in text, name


def test_openapi_documents_every_endpoint(live_sqlite):
    doc = live_sqlite.client.get("/openapi.json").json()
    paths = set(doc["paths"])
    for path in (
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/cancel",
        "/v1/jobs/{job_id}/logs",
        "/v1/usage",
        "/v1/pool",
        "/v1/tenants",
        "/v1/tenants/{name}/tokens",
        "/v1/tokens/{token_id}",
        "/v1/audit",
    ):
        assert path in paths, path
    post = doc["paths"]["/v1/jobs"]["post"]
    assert "JobOut" in str(post["responses"]["201"]) and "422" in post["responses"]


def test_residency_check_refuses_data_that_may_not_leave_its_jurisdiction(tmp_path):
    """On the multi-jurisdiction demo pool the residency check is on by default: personal
    data collected in China may not be trained on outside China (CN rulebook)."""
    from fastapi.testclient import TestClient

    from computepool.server.runtime import ServeSettings, build_app
    from tests.server.conftest import admin_token, bearer, kill_leftovers

    data, url = tmp_path / "data", f"sqlite:///{tmp_path / 'c.db'}"
    tok = admin_token(data, url)
    app = build_app(
        ServeSettings(data_dir=data, db_url=url, round_seconds=0.1, stop_jobs_on_exit=True)
    )
    try:
        with TestClient(app) as c:
            adm = bearer(tok)
            c.post("/v1/tenants", json={"name": "auto-cn"}, headers=adm)
            t = bearer(c.post("/v1/tenants/auto-cn/tokens", headers=adm).json()["token"])
            ds = {"name": "drives", "data_class": "cn.pi", "origin": "CN", "persons": 2_000_000}
            r = c.post(
                "/v1/jobs",
                json={"command": "true", "accelerator_types": ["H100"], "datasets": [ds]},
                headers=t,
            )
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == "datasets"
            r = c.post("/v1/jobs", json={"command": "true", "datasets": [ds]}, headers=t)
            assert r.status_code == 201
            j = r.json()["id"]
            end = time.time() + 20
            while c.get(f"/v1/jobs/{j}", headers=t).json()["status"] != "succeeded":
                assert time.time() < end
                time.sleep(0.05)
            flavor = c.get(f"/v1/jobs/{j}", headers=t).json()["flavor"]
            assert flavor.startswith("cn-")
            audit = c.get("/v1/audit", headers=adm).json()
            assert any(a["actor"] == "check:residency" for a in audit)
    finally:
        kill_leftovers(data)


@pytest.mark.parametrize("policy", ["las", "ftf", "tiresias", "fifo-agnostic"])
def test_other_policies_drive_the_live_pool_under_quotas(tmp_path, policy):
    from tests.server.conftest import LivePool, bearer, kill_leftovers, open_live

    data = tmp_path / "data"
    client, tok = open_live(data, f"sqlite:///{tmp_path / 'c.db'}", policy=policy)
    try:
        with client:
            live = LivePool(client, bearer(tok), data)
            q = {"cohort": "c", "quotas": {"V100": {"nominal": 8, "borrowing_limit": 0}}}
            a, b = live.tenant("acme", **q), live.tenant("bolt", **q)
            spec = {"command": "sleep 0.3", "accelerator_types": ["V100"]}
            ids = [
                (a, live.submit(a, accelerators_per_worker=4, **spec).json()["id"])
                for _ in range(4)
            ]
            ids += [
                (b, live.submit(b, accelerators_per_worker=2, **spec).json()["id"])
                for _ in range(3)
            ]
            for who, j in ids:
                live.wait_status(who, j, "succeeded", timeout=30)
            # acme never held more than its 8 (2 jobs of 4) at once
            allocs = [a_ for who, j in ids if who == a for a_ in live.job(a, j)["allocations"]]
            edges = sorted(
                [(x["started_at"], 4) for x in allocs] + [(x["ended_at"], -4) for x in allocs]
            )
            held = peak = 0
            for _, d in edges:
                held += d
                peak = max(peak, held)
            assert peak <= 8, [
                (x["started_at"][11:23], x["ended_at"][11:23], x["end_reason"])
                for x in sorted(allocs, key=lambda x: x["started_at"])
            ]
    finally:
        kill_leftovers(data)
