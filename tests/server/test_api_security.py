"""Security headers on every answer, form posts from opaque or foreign origins refused,
per-tenant /metrics behind a token, and token revocation effective at the next request."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from computepool.server import store
from computepool.server.app import GuardedApp
from computepool.server.db import make_engine, sessions
from computepool.server.guard import CSP, DOCS_CSP
from tests.server.conftest import bearer

HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def _secured(r, csp: str = CSP) -> None:
    for k, v in HEADERS.items():
        assert r.headers.get(k) == v, (r.request.url, k, dict(r.headers))
    assert r.headers.get("content-security-policy") == csp, r.request.url


def test_every_answer_carries_the_security_headers(live_sqlite):
    live = live_sqlite
    a = live.tenant("acme")
    j = live.submit(a, command="echo hi").json()["id"]
    c = live.client
    answers = [
        c.get("/healthz"),
        c.get("/openapi.json"),
        c.get("/metrics"),
        c.get("/v1/jobs"),  # 401
        c.get("/v1/jobs", headers=a),
        c.get("/v1/jobs/999", headers=a),  # 404
        c.get("/v1/jobs/0", headers=a),  # 422
        c.post("/v1/jobs", json={"command": ""}, headers=a),  # 422
        c.get(f"/v1/jobs/{j}/logs", headers=a),  # a streamed answer
        c.get("/v1/jobs/1?x=%00", headers=a),  # refused by the guard itself
        c.get("/ui/login"),
        c.get("/", headers=a),
        c.get("/ui/static/app.js"),
        c.get("/", follow_redirects=False),  # 303 to the login page
        c.get("/no/such/page"),
    ]
    for r in answers:
        _secured(r)
    _secured(c.get("/docs"), DOCS_CSP)
    assert "frame-ancestors 'none'" in CSP and "script-src 'self';" in CSP


def test_a_server_error_carries_them_too():
    app = GuardedApp()

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    r = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert r.status_code == 500
    _secured(r)


def test_form_posts_from_an_opaque_or_foreign_origin_are_refused(live_sqlite):
    live = live_sqlite
    a = live.tenant("acme")
    token = a["Authorization"][7:]
    c = live.client
    form = {"command": "true", "name": "from-the-ui"}
    for origin in ("null", "https://evil.example"):
        r = c.post("/ui/jobs", data=form, headers={**a, "Origin": origin}, follow_redirects=False)
        assert r.status_code == 403, (origin, r.text)
        r = c.post("/ui/login", data={"token": token}, headers={"Origin": origin})
        assert r.status_code == 403, origin
    r = c.post(
        "/ui/jobs", data=form, headers={**a, "Sec-Fetch-Site": "cross-site"}, follow_redirects=False
    )
    assert r.status_code == 403
    assert live.count_jobs() == 0
    r = c.post(
        "/ui/jobs",
        data=form,
        headers={**a, "Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and live.count_jobs() == 1


def _tenant_lines(text: str) -> set[str]:
    return {ln.split("{", 1)[1] for ln in text.splitlines() if 'tenant="' in ln}


def test_metrics_show_tenant_series_only_to_whom_may_see_them(live_sqlite):
    live = live_sqlite
    a = live.tenant("acme")
    b = live.tenant("bolt")
    live.submit(a, command="true")
    live.submit(b, command="true")
    live.wait(lambda: "cpool_pool_submissions_total 2.0" in live.client.get("/metrics").text)
    anon = live.client.get("/metrics").text
    assert "acme" not in anon and "bolt" not in anon and 'tenant="' not in anon
    assert "cpool_pool_queue_length" in anon and "cpool_flavor_utilisation" in anon
    admin = live.client.get("/metrics", headers=live.admin).text
    assert 'cpool_submissions_total{tenant="acme"} 1.0' in admin
    assert 'cpool_submissions_total{tenant="bolt"} 1.0' in admin
    own = live.client.get("/metrics", headers=a).text
    assert all(x.startswith('tenant="acme"') for x in _tenant_lines(own)) and _tenant_lines(own)
    assert "bolt" not in own
    refused = live.client.get("/metrics", headers=bearer("cpool_not-a-token")).text
    assert 'tenant="' not in refused


def test_public_metrics_setting_shows_them_without_a_token(tmp_path):
    from tests.server.conftest import open_live

    data = tmp_path / "data"
    client, tok = open_live(data, f"sqlite:///{tmp_path / 'c.db'}", public_metrics=True)
    with client:
        h = bearer(tok)
        client.post("/v1/tenants", json={"name": "acme"}, headers=h)
        t = bearer(client.post("/v1/tenants/acme/tokens", headers=h).json()["token"])
        assert client.post("/v1/jobs", json={"command": "true"}, headers=t).status_code == 201
        assert 'cpool_submissions_total{tenant="acme"} 1.0' in client.get("/metrics").text


def test_a_token_revoked_in_the_store_is_refused_at_the_next_request(live):
    """``cpool admin token revoke`` writes to the store from another process: the server
    must not keep accepting the token from a cache."""
    a = live.tenant("acme")
    assert live.client.get("/v1/jobs", headers=a).status_code == 200
    assert live.client.get("/", headers=a).status_code == 200
    other = make_engine(str(live.client.app.state.ctx.engine.url.render_as_string(False)))
    try:
        with sessions(other)() as s:
            p = store.principal_for(s, a["Authorization"][7:])
            assert store.revoke_token(s, p.token_id, "test")
            s.commit()
    finally:
        other.dispose()
    t0 = time.monotonic()
    r = live.client.get("/v1/jobs", headers=a)
    assert r.status_code == 401 and time.monotonic() - t0 < 1.0
    assert live.client.post("/v1/jobs", json={"command": "true"}, headers=a).status_code == 401
    assert live.client.get("/", headers=a, follow_redirects=False).status_code == 401
    assert live.client.get("/metrics", headers=a).status_code == 200  # public part only


def test_a_token_revoked_through_the_api_is_refused_at_once(live):
    live.tenant("acme")
    r = live.client.post("/v1/tenants/acme/tokens", headers=live.admin).json()
    t = bearer(r["token"])
    assert live.client.get("/v1/jobs", headers=t).status_code == 200
    assert live.client.delete(f"/v1/tokens/{r['id']}", headers=live.admin).status_code == 204
    assert live.client.get("/v1/jobs", headers=t).status_code == 401
