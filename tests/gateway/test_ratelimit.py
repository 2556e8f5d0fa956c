"""Token buckets of the gateway's per-tenant limits (pure: the clock is passed in), and the
limits through the gateway: 429 with Retry-After, per tenant, a server-wide default."""

from __future__ import annotations

import pytest

from computepool.server.ratelimit import Limits, TenantLimiter, TokenBucket
from tests.gateway.conftest import serve_gateway


def test_bucket_refills_at_its_rate_up_to_its_burst():
    b = TokenBucket(rate=2.0, burst=2.0)
    assert b.wait_s(1, now=0.0) == 0.0
    b.take(2, now=0.0)
    assert b.wait_s(1, now=0.0) == pytest.approx(0.5)
    assert b.wait_s(1, now=0.5) == 0.0
    b.refill(100.0)
    assert b.level == 2.0  # never above the burst


def test_requests_per_second():
    lim, one = TenantLimiter(), Limits(requests_per_s=2)
    assert lim.admit(1, one, 0.0) == 0.0
    assert lim.admit(1, one, 0.0) == 0.0
    assert lim.admit(1, one, 0.0) == pytest.approx(0.5)
    assert lim.admit(2, one, 0.0) == 0.0  # another tenant has its own bucket
    assert lim.admit(1, one, 0.5) == 0.0


def test_tokens_per_minute_in_debt_waits_until_paid_back():
    lim, tpm = TenantLimiter(), Limits(tokens_per_min=60)  # one token a second
    assert lim.admit(1, tpm, 0.0) == 0.0
    lim.charge(1, 100, 0.0)  # used more than the bucket held: 40 in debt
    assert lim.admit(1, tpm, 0.0) == pytest.approx(41.0)
    assert lim.admit(1, tpm, 41.0) == 0.0


def test_changed_limits_take_effect():
    lim = TenantLimiter()
    assert lim.admit(1, Limits(requests_per_s=1), 0.0) == 0.0
    assert lim.admit(1, Limits(requests_per_s=1), 0.0) > 0
    assert lim.admit(1, Limits(), 0.0) == 0.0  # unlimited now


def test_unlimited_by_default():
    lim = TenantLimiter()
    assert all(lim.admit(1, Limits(), 0.0) == 0.0 for _ in range(1000))


def _post(gw, who, n=1):
    return [
        gw.http.post(
            "/v1/completions",
            headers=who,
            json={"model": "chat-7b", "prompt": "x", "max_tokens": 4},
        )  # fmt: skip
        for _ in range(n)
    ]


def test_tenant_request_rate_limit_answers_429(gw):
    slow = gw.tenant("slow", requests_per_s=0.5)
    fast = gw.tenant("fast")
    first, second = _post(gw, slow, 2)
    assert first.status_code == 200
    assert second.status_code == 429
    assert int(second.headers["retry-after"]) >= 1
    err = second.json()["error"]
    assert err["type"] == "rate_limit_error" and err["code"] == "rate_limit_exceeded"
    assert "0.5 requests/s" in err["message"]
    assert all(r.status_code == 200 for r in _post(gw, fast, 5))  # not limited
    admin = gw.http.get("/metrics", headers=gw.admin).text
    assert 'cpool_gateway_rate_limited_total{tenant="slow"} 1.0' in admin


def test_tenant_token_rate_limit_answers_429(gw):
    who = gw.tenant("tokens", tokens_per_min=4)  # a request of 1 + 4 tokens: then in debt
    first, second = _post(gw, who, 2)
    assert first.status_code == 200
    assert second.status_code == 429
    assert "4 tokens/min" in second.json()["error"]["message"]


def test_server_default_applies_to_tenants_without_limits(tmp_path):
    app, _ = serve_gateway(tmp_path, gateway_requests_per_s=1.0)
    cfg = app.state.ctx.gateway.config
    assert cfg.default_limits == Limits(requests_per_s=1.0, tokens_per_min=None)


def test_bad_server_default_is_refused(tmp_path):
    with pytest.raises(ValueError, match="--gateway-tokens-per-min must be > 0"):
        serve_gateway(tmp_path, gateway_tokens_per_min=0.0)


def test_cli_sets_a_tenants_limits(tmp_path):
    from typer.testing import CliRunner

    from computepool.cli.app import app

    d = ["--data-dir", str(tmp_path / "d")]
    r = CliRunner().invoke(app, ["admin", "tenant", "add", "t1", "--requests-per-s", "5",
                                 "--tokens-per-min", "9000", *d])  # fmt: skip
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["admin", "tenant", "list", "-o", "json", *d])
    (row,) = __import__("json").loads(r.output)
    assert (row["requests_per_s"], row["tokens_per_min"]) == (5.0, 9000.0)
    r = CliRunner().invoke(app, ["admin", "tenant", "add", "t2", "--requests-per-s", "0", *d])
    assert r.exit_code != 0 and "requests_per_s" in r.output
