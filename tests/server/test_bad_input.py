"""Every invalid request gets a 4xx naming the field and the reason, and stores nothing."""

import threading

import pytest

BAD_JOBS = [
    ({}, "command", 422),
    ({"command": ""}, "command", 422),
    ({"command": []}, "command", 422),
    ({"command": "true", "workers": 0}, "workers", 422),
    ({"command": "true", "workers": "two"}, "workers", 422),
    ({"command": "true", "accelerators_per_worker": 0}, "accelerators_per_worker", 422),
    ({"command": "true", "gpus": 8}, "gpus", 422),
    ({"command": "true", "stacks": ["opencl"]}, "stacks", 422),
    ({"command": "true", "env": {"CPOOL_JOB_ID": "x"}}, "env", 422),
    ({"command": "true", "env": {"1BAD": "x"}}, "env", 422),
    ({"command": "true", "workdir": "relative/dir"}, "workdir", 422),
    ({"command": "true", "kind": "mine"}, "kind", 422),
    ({"command": "true", "work": -1}, "work", 422),
    # valid as JSON, impossible on this pool
    ({"command": "true", "accelerator_types": ["H800"]}, "accelerator_types", 422),
    ({"command": "true", "stacks": ["cann"]}, "stacks", 422),
    ({"command": "true", "workers": 40, "accelerator_types": ["V100"]}, "workers", 422),
    ({"command": "true", "accelerators_per_worker": 8}, "accelerators_per_worker", 422),
    ({"command": "true", "job_type": "no-such-model"}, "job_type", 422),
]


@pytest.mark.parametrize(
    ("body", "field", "status"), BAD_JOBS, ids=[b[1] + str(i) for i, b in enumerate(BAD_JOBS)]
)
def test_bad_job_is_refused_with_field_and_reason(live_shared, body, field, status):
    live = live_shared
    a = live.tenant("acme")
    before = live.count_jobs()
    r = live.client.post("/v1/jobs", json=body, headers=a)
    assert r.status_code == status, r.text
    doc = r.json()
    assert doc["errors"][0]["field"].split(".")[0] == field
    assert doc["errors"][0]["reason"]
    assert live.count_jobs() == before


def test_bad_input_on_both_stores(live):
    a = live.tenant("acme")
    r = live.client.post(
        "/v1/jobs", content=b"{not json", headers={**a, "Content-Type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["errors"]
    r = live.client.post("/v1/jobs", json={"command": "true", "workers": 0}, headers=a)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "workers"
    assert live.count_jobs() == 0
    r = live.client.get("/v1/usage", params={"since": "yesterday-ish"}, headers=a)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "since"
    r = live.client.get("/v1/jobs/999", headers=a)
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "id"
    r = live.client.get("/v1/jobs", params={"limit": 0}, headers=a)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "limit"


def test_bad_tenant_requests_change_nothing(live_sqlite):
    live = live_sqlite
    live.tenant("acme", quotas={"*": {"nominal": 4}})
    cases = [
        ({"name": "Bad Name"}, "name"),
        ({"name": "acme", "weight": 0}, "weight"),
        ({"name": "acme", "quotas": {"mars/H100": {"nominal": 1}}}, "quotas.mars/H100"),
        ({"name": "acme", "quotas": {"*": {"nominal": -1}}}, "quotas.*.nominal"),
        ({"name": "acme", "budget_usd": -5}, "budget_usd"),
    ]
    for body, field in cases:
        r = live.client.post("/v1/tenants", json=body, headers=live.admin)
        assert r.status_code == 422, body
        assert r.json()["errors"][0]["field"] == field
    (t,) = live.client.get("/v1/tenants", headers=live.admin).json()
    assert t["weight"] == 1.0 and t["quotas"]["*"]["nominal"] == 4


def test_cancel_of_a_finished_job_is_a_conflict(live_sqlite):
    live = live_sqlite
    a = live.tenant("acme")
    j = live.submit(a, command="true").json()["id"]
    live.wait_status(a, j, "succeeded")
    r = live.client.post(f"/v1/jobs/{j}/cancel", headers=a)
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "status"
    assert live.job(a, j)["status"] == "succeeded"


def test_idempotent_submission(live):
    a = live.tenant("acme")
    b = live.tenant("bolt")
    spec = {"command": "sleep 0.2", "name": "once"}
    r1 = live.client.post("/v1/jobs", json=spec, headers={**a, "Idempotency-Key": "k1"})
    r2 = live.client.post("/v1/jobs", json=spec, headers={**a, "Idempotency-Key": "k1"})
    assert (r1.status_code, r2.status_code) == (201, 200)
    assert r1.json()["id"] == r2.json()["id"]
    # the same key in the body is the same key
    r3 = live.client.post("/v1/jobs", json={**spec, "idempotency_key": "k1"}, headers=a)
    assert r3.status_code == 200 and r3.json()["id"] == r1.json()["id"]
    # same key, another request: conflict, nothing stored
    r4 = live.client.post(
        "/v1/jobs", json={**spec, "name": "other"}, headers={**a, "Idempotency-Key": "k1"}
    )
    assert r4.status_code == 409 and r4.json()["errors"][0]["field"] == "idempotency_key"
    # header and body disagree
    r5 = live.client.post(
        "/v1/jobs", json={**spec, "idempotency_key": "k2"}, headers={**a, "Idempotency-Key": "k3"}
    )
    assert r5.status_code == 422
    # keys are per tenant
    r6 = live.client.post("/v1/jobs", json=spec, headers={**b, "Idempotency-Key": "k1"})
    assert r6.status_code == 201 and r6.json()["id"] != r1.json()["id"]
    assert live.count_jobs() == 2


def test_concurrent_retries_with_one_key_create_one_job(live):
    a = live.tenant("acme")
    ids, errors = [], []

    def go():
        r = live.client.post(
            "/v1/jobs", json={"command": "true"}, headers={**a, "Idempotency-Key": "race"}
        )
        (ids if r.status_code in (200, 201) else errors).append(r.json().get("id", r.text))

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(ids)) == 1
    assert live.count_jobs() == 1
