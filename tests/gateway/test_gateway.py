"""The OpenAI-compatible gateway end to end over loopback: a real server (store, API) in
front of TEST DOUBLES of OpenAI-compatible replicas."""

from __future__ import annotations

import json
import time

import pytest

from computepool.server.service_directory import ServiceInfo
from tests.gateway.conftest import dead_url


def _events(text: str) -> list[str]:
    return [e[len("data: ") :] for e in text.split("\n\n") if e.startswith("data: ")]


def _tokens(gw, who) -> list[dict]:
    gw.flush()
    r = gw.http.get("/v1/usage", headers=who)
    assert r.status_code == 200, r.text
    return r.json()["tokens"]


def test_models_lists_what_the_tenant_may_use(gw):
    a, b = gw.tenant("oem-a"), gw.tenant("oem-b")
    ids = lambda who: sorted(m["id"] for m in gw.http.get("/v1/models", headers=who).json()["data"])  # noqa: E731
    assert ids(a) == ["chat-7b", "down", "no-usage", "private-a"]
    assert ids(b) == ["chat-7b", "down", "no-usage"]
    r = gw.http.get("/v1/models")
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"


def test_completion_is_routed_and_metered(gw):
    a = gw.tenant("oem-a")
    r = gw.http.post("/v1/completions", headers=a,
                     json={"model": "chat-7b", "prompt": "one two three", "max_tokens": 5})  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
    assert body["choices"][0]["text"] == "tok0 tok1 tok2 tok3 tok4"
    rows = _tokens(gw, a)
    assert len(rows) == 1
    row = rows[0]
    assert (row["tenant"], row["service"], row["model"]) == ("oem-a", "chat-7b", "qwen2.5-7b")
    assert (row["requests"], row["prompt_tokens"], row["completion_tokens"]) == (1, 3, 5)
    assert row["estimated_requests"] == 0
    # priced from the catalog: qwen2.5-7b at $0.20 per million tokens in and out
    assert row["cost_usd"] == pytest.approx(8 * 0.20 / 1e6)
    # another tenant sees none of it
    assert _tokens(gw, gw.tenant("oem-b")) == []


def test_usage_reads_the_tokens_metered_a_moment_ago(gw):
    """Read your own writes: /v1/usage right after a request shows it, without waiting for the
    meter's next periodic write (the README's `cpool usage --tokens` after a `curl` raced it)."""
    a = gw.tenant("oem-a")
    r = gw.http.post("/v1/completions", headers=a,
                     json={"model": "chat-7b", "prompt": "one two", "max_tokens": 2})  # fmt: skip
    assert r.status_code == 200, r.text
    rows = gw.http.get("/v1/usage", headers=a).json()["tokens"]  # no flush by the test
    assert [(x["requests"], x["prompt_tokens"], x["completion_tokens"]) for x in rows] == [
        (1, 2, 2)
    ]


def test_least_outstanding_spreads_over_replicas(gw):
    a = gw.tenant("oem-a")
    for _ in range(6):
        r = gw.http.post("/v1/completions", headers=a,
                         json={"model": "chat-7b", "prompt": "x", "max_tokens": 1})  # fmt: skip
        assert r.status_code == 200
    seen = {k: len(d.state.seen) for k, d in gw.doubles.items()}
    assert seen["a"] == 3 and seen["b"] == 3


def test_chat_stream_passes_events_and_meters_the_usage_chunk(gw):
    a = gw.tenant("oem-a")
    body = {"model": "chat-7b", "messages": [{"role": "user", "content": "hi there"}],
            "max_tokens": 4, "stream": True}  # fmt: skip
    with gw.http.stream("POST", "/v1/chat/completions", headers=a, json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        text = r.read().decode()
    ev = _events(text)
    assert ev[-1] == "[DONE]"
    chunks = [json.loads(e) for e in ev[:-1]]
    # the gateway asked the replica for usage to meter it; the client did not: not sent on
    assert all(c["choices"] for c in chunks) and len(chunks) == 4
    upstream = gw.doubles["a"].state.seen + gw.doubles["b"].state.seen
    assert upstream[-1]["stream_options"] == {"include_usage": True}
    # asked for: the final usage chunk comes through
    body["stream_options"] = {"include_usage": True}
    with gw.http.stream("POST", "/v1/chat/completions", headers=a, json=body) as r:
        ev = _events(r.read().decode())
    last = json.loads(ev[-2])
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 4
    row = _tokens(gw, a)[0]
    assert (row["requests"], row["prompt_tokens"], row["completion_tokens"]) == (2, 4, 8)


def test_stream_is_not_buffered(gw, tmp_path):
    from tests.gateway.openai_double import double_app, serve_double

    a = gw.tenant("oem-a")
    slow = double_app("slow", "slow", delay_s=0.3)
    with serve_double(slow) as url:
        gw.route([ServiceInfo("slow", "default", "qwen2.5-7b")], {"slow": [url]})
        body = {"model": "slow", "prompt": "p", "max_tokens": 5, "stream": True}
        t0 = time.monotonic()
        with gw.http.stream("POST", "/v1/completions", headers=a, json=body) as r:
            it = r.iter_raw()
            first = next(it)
            t_first = time.monotonic() - t0
            for _ in it:
                pass
            t_all = time.monotonic() - t0
    assert b"tok0" in first
    # the first token arrives ~0.3 s in, the last ~1.5 s in: nothing waited for the end
    assert t_first < 1.0 < t_all, (t_first, t_all)


def test_a_replica_that_cannot_be_reached_is_skipped(gw):
    a = gw.tenant("oem-a")
    live = gw.gateway.directory.endpoints("chat-7b")[0]
    gw.route([ServiceInfo("chat-7b", "default", "qwen2.5-7b")],
             {"chat-7b": [dead_url(), live, dead_url()]})  # fmt: skip
    for _ in range(5):
        r = gw.http.post("/v1/completions", headers=a,
                         json={"model": "chat-7b", "prompt": "x", "max_tokens": 1})  # fmt: skip
        assert r.status_code == 200, r.text
    gw.route([ServiceInfo("chat-7b", "default", "qwen2.5-7b")], {"chat-7b": [dead_url()]})
    r = gw.http.post("/v1/completions", headers=a,
                     json={"model": "chat-7b", "prompt": "x", "max_tokens": 1})  # fmt: skip
    assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["code"] == "no_replica_ready"


def test_no_replica_ready_is_503_with_retry_after(gw):
    r = gw.http.post("/v1/completions", headers=gw.tenant("oem-a"),
                     json={"model": "down", "prompt": "x"})  # fmt: skip
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"
    err = r.json()["error"]
    assert err["type"] == "service_unavailable" and err["code"] == "no_replica_ready"


def test_replica_without_usage_is_counted_by_the_gateway(gw):
    a = gw.tenant("oem-a")
    r = gw.http.post("/v1/completions", headers=a,
                     json={"model": "no-usage", "prompt": "a" * 40, "max_tokens": 3})  # fmt: skip
    assert r.status_code == 200 and "usage" not in r.json()
    body = {"model": "no-usage", "prompt": "a" * 8, "max_tokens": 6, "stream": True}
    with gw.http.stream("POST", "/v1/completions", headers=a, json=body) as s:
        s.read()
    row = _tokens(gw, a)[0]
    # prompt: 4 characters a token (10 + 2); completion: the answer's text (3 tokens of
    # "tokN " = 14 characters -> 4) and one token per streamed chunk with text (6)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (12, 4 + 6)
    assert row["estimated_requests"] == 2


def test_missing_max_tokens_is_left_to_the_engine(gw):
    # (a default of the gateway's cap would make vLLM refuse it for a small-context model)
    r = gw.http.post("/v1/chat/completions", headers=gw.tenant("oem-a"),
                     json={"model": "private-a", "messages": [{"role": "user", "content": "x"}]})  # fmt: skip
    assert r.status_code == 200
    assert "max_tokens" not in gw.doubles["p"].state.seen[-1]


def test_admin_token_cannot_spend(gw):
    r = gw.http.post("/v1/completions", headers=gw.admin, json={"model": "chat-7b", "prompt": "x"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "tenant_required"
    models = gw.http.get("/v1/models", headers=gw.admin).json()["data"]
    assert "private-a" in {m["id"] for m in models}


def test_metrics_per_service_public_per_tenant_admin_only(gw):
    a = gw.tenant("oem-a")
    r = gw.http.post("/v1/completions", headers=a,
                     json={"model": "chat-7b", "prompt": "x y", "max_tokens": 2})  # fmt: skip
    assert r.status_code == 200
    public = gw.http.get("/metrics").text
    assert 'cpool_gateway_requests_total{code="200",service="chat-7b"} 1.0' in public
    assert 'cpool_gateway_tokens_total{kind="completion",service="chat-7b"} 2.0' in public
    assert 'cpool_service_replicas_ready{service="chat-7b"} 2.0' in public
    assert "cpool_gateway_tenant_tokens" not in public.replace("# HELP", "").split("TYPE")[0]
    assert 'tenant="oem-a"' not in public
    admin = gw.http.get("/metrics", headers=gw.admin).text
    assert (
        'cpool_gateway_tenant_tokens_total{kind="prompt",service="chat-7b",tenant="oem-a"} 2.0'
        in admin
    )


def test_replica_errors_openai_shape_passed_on_others_wrapped(gw):
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from tests.gateway.openai_double import serve_double

    a = gw.tenant("oem-a")
    odd = FastAPI()

    @odd.post("/v1/completions")
    async def refuse() -> JSONResponse:
        return JSONResponse({"detail": [{"msg": "prompt_tokens required"}]}, status_code=422)

    live = gw.gateway.directory.endpoints("chat-7b")[0]
    with serve_double(odd) as url:
        gw.route([ServiceInfo("odd", "default", "m"), ServiceInfo("other", "default", "m")],
                 {"odd": [url], "other": [live]})  # fmt: skip
        r = gw.http.post("/v1/completions", headers=a, json={"model": "odd", "prompt": "x"})
        err = r.json()["error"]
        assert r.status_code == 502 and err["code"] == "upstream_error"
        assert "the replica answered 422" in err["message"] and "prompt_tokens" in err["message"]
        # the replica serves another model: its own OpenAI error (404) comes through as it is
        r = gw.http.post("/v1/completions", headers=a, json={"model": "other", "prompt": "x"})
        assert r.status_code == 404 and r.json()["error"]["message"] == "no such model"
    assert _tokens(gw, a) == []


def test_metering_and_limits_on_postgresql(gw_pg):
    gw = gw_pg
    a = gw.tenant("oem-a", requests_per_s=1)
    r = gw.http.post("/v1/chat/completions", headers=a,
                     json={"model": "chat-7b", "messages": [{"role": "user", "content": "a b"}],
                           "max_tokens": 3})  # fmt: skip
    assert r.status_code == 200, r.text
    r2 = gw.http.post("/v1/completions", headers=a, json={"model": "chat-7b", "prompt": "x"})
    assert r2.status_code == 429
    row = _tokens(gw, a)[0]
    assert (row["requests"], row["prompt_tokens"], row["completion_tokens"]) == (1, 2, 3)
    assert row["cost_usd"] == pytest.approx(5 * 0.20 / 1e6)


def test_client_leaving_mid_stream_frees_the_replica_and_is_metered(gw):
    from tests.gateway.openai_double import double_app, serve_double

    a = gw.tenant("oem-a")
    slow = double_app("slow", "slow", delay_s=0.2)
    with serve_double(slow) as url:
        gw.route([ServiceInfo("slow", "default", "qwen2.5-7b")], {"slow": [url]})
        body = {"model": "slow", "prompt": "p", "max_tokens": 50, "stream": True}
        with gw.http.stream("POST", "/v1/completions", headers=a, json=body) as r:
            # hold the iterator: a discarded one is closed at once, and closing it closes the
            # connection (httpcore drops an unfinished stream), so the client would have left
            # already and the gateway, rightly, freed the replica before the check below
            chunks = r.iter_raw()
            first = next(chunks)
            assert b"tok0" in first
            # the client is still there and the replica has ~10 s of tokens left: counted
            assert gw.gateway.inflight[url] == 1
            chunks.close()  # the client leaves mid-stream
        end = time.monotonic() + 10
        while gw.gateway.inflight.get(url) and time.monotonic() < end:
            time.sleep(0.05)
        assert url not in gw.gateway.inflight  # none in flight: forgotten
        row = _tokens(gw, a)[0]
        # the replica's usage chunk never came: counted by the gateway (chunks it passed on)
        assert row["requests"] == 1 and row["estimated_requests"] == 1
        assert 1 <= row["completion_tokens"] < 50
