"""Auth: bearer tokens per tenant, an admin role; a tenant sees and touches only its own jobs."""

import pytest

from tests.server.conftest import bearer

ENDPOINTS = [
    ("GET", "/v1/jobs"),
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs/{a}"),
    ("POST", "/v1/jobs/{a}/cancel"),
    ("GET", "/v1/jobs/{a}/logs"),
    ("GET", "/v1/usage"),
    ("GET", "/v1/pool"),
    ("POST", "/v1/tenants"),
    ("GET", "/v1/tenants"),
    ("POST", "/v1/tenants/acme/tokens"),
    ("DELETE", "/v1/tokens/1"),
    ("GET", "/v1/audit"),
]


def _call(live, method, path, headers, a_job, json=None):
    return live.client.request(method, path.format(a=a_job), headers=headers, json=json)


@pytest.fixture
def two(live):
    a = live.tenant("acme")
    b = live.tenant("bolt")
    job = live.submit(a, command="sleep 30", name="a-secret").json()["id"]
    return live, a, b, job


def test_every_endpoint_needs_a_valid_token(two):
    live, _, _, job = two
    for method, path in ENDPOINTS:
        for headers in ({}, bearer("cpool_not-a-real-token"), {"Authorization": "Basic abc"}):
            r = _call(live, method, path, headers, job, json={"command": "true", "name": "x"})
            assert r.status_code == 401, (method, path, headers)
            assert r.json()["errors"][0]["field"] == "authorization"
    assert live.count_jobs() == 1


def test_another_tenant_cannot_see_or_touch_a_job(two):
    live, a, b, job = two
    for method, path in [
        ("GET", "/v1/jobs/{a}"),
        ("POST", "/v1/jobs/{a}/cancel"),
        ("GET", "/v1/jobs/{a}/logs"),
    ]:
        r = _call(live, method, path, b, job)
        assert r.status_code == 404, (method, path)
        assert "a-secret" not in r.text
    assert live.job(a, job)["cancel_requested"] is False


def test_listing_and_usage_show_only_the_callers_tenant(two):
    live, a, b, job = two
    live.submit(b, command="true", name="b-job")
    names_b = [j["name"] for j in live.client.get("/v1/jobs", headers=b).json()["jobs"]]
    assert names_b == ["b-job"]
    assert live.client.get("/v1/jobs", params={"tenant": "acme"}, headers=b).status_code == 403
    assert live.client.get("/v1/usage", params={"tenant": "acme"}, headers=b).status_code == 403
    live.wait_status(a, job, "running")
    rows = live.client.get("/v1/usage", headers=b).json()["rows"]
    assert all(r["tenant"] == "bolt" for r in rows)
    admin_names = {
        j["tenant"] for j in live.client.get("/v1/jobs", headers=live.admin).json()["jobs"]
    }
    assert admin_names == {"acme", "bolt"}


def test_admin_endpoints_refuse_tenant_tokens(two):
    live, a, _, job = two
    for method, path in [
        ("POST", "/v1/tenants"),
        ("GET", "/v1/tenants"),
        ("POST", "/v1/tenants/acme/tokens"),
        ("DELETE", "/v1/tokens/1"),
        ("GET", "/v1/audit"),
    ]:
        body = {"name": "evil", "quotas": {"*": {"nominal": 999}}}
        r = _call(live, method, path, a, job, json=body)
        assert r.status_code == 403, (method, path)
    tenants = live.client.get("/v1/tenants", headers=live.admin).json()
    assert "evil" not in {t["name"] for t in tenants}
    assert live.client.get("/v1/jobs", headers=a).status_code == 200  # token 1 (admin) untouched


def test_admin_sees_and_cancels_any_job_but_cannot_submit(two):
    live, a, _, job = two
    assert live.client.get(f"/v1/jobs/{job}", headers=live.admin).status_code == 200
    r = live.client.post("/v1/jobs", json={"command": "true"}, headers=live.admin)
    assert r.status_code == 403
    assert live.client.post(f"/v1/jobs/{job}/cancel", headers=live.admin).status_code == 202
    live.wait_status(a, job, "cancelled")
    audit = live.client.get("/v1/audit", headers=live.admin).json()
    assert any(x["action"] == "job.cancel" and x["actor"].startswith("admin") for x in audit)


def test_revoked_token_is_refused(two):
    live, _, _, _ = two
    r = live.client.post("/v1/tenants/acme/tokens", headers=live.admin).json()
    tok = bearer(r["token"])
    assert live.client.get("/v1/jobs", headers=tok).status_code == 200
    assert live.client.delete(f"/v1/tokens/{r['id']}", headers=live.admin).status_code == 204
    assert live.client.get("/v1/jobs", headers=tok).status_code == 401
