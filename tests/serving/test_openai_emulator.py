"""The emulated replica answers vLLM's OpenAI API: bodies, usage, server-sent events, errors,
and vLLM's Prometheus names on /metrics."""

import json

import pytest
from fastapi.testclient import TestClient

from computepool.serving import openai_api as oa
from computepool.serving.emulator import replica_timing
from computepool.serving.engines.metrics import VLLM, read_load
from computepool.serving.http import replica_app


@pytest.fixture(scope="module")
def client():
    app = replica_app(replica_timing("qwen2.5-1.5b", "H800"), 0.0, served_name="chat")
    with TestClient(app) as c:
        yield c


def _events(text: str) -> list:
    out = []
    for block in text.split("\n\n"):
        if not block:
            continue
        assert block.startswith("data: "), block
        data = block[6:]
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_token_rule_counts_words_and_punctuation():
    assert oa.count_tokens("Hello, pool!") == 4
    assert oa.count_tokens("") == 0
    assert oa.count_tokens("".join(oa.token_text(i) for i in range(37))) == 37
    chat = oa.ChatRequest(messages=[{"role": "user", "content": "a b c"}])
    assert chat.prompt_tokens() == 3 + 3 + 3


def test_models_lists_the_served_name(client):
    body = client.get("/v1/models").json()
    assert body["object"] == "list" and [m["id"] for m in body["data"]] == ["chat"]


def test_completion_whole_answer_carries_usage(client):
    r = client.post("/v1/completions", json={
        "model": "chat", "prompt": "Hello, pool!", "max_tokens": 5, "temperature": 0.7,
        "top_p": 0.9, "seed": 1, "stop": ["\n"], "logit_bias": {},
    })  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "text_completion" and body["model"] == "chat"
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}
    assert oa.count_tokens(body["choices"][0]["text"]) == 5
    assert body["choices"][0]["finish_reason"] == "length"


def test_prompt_as_token_ids_and_default_max_tokens(client):
    body = client.post("/v1/completions", json={"prompt": [1, 2, 3, 4, 5, 6, 7]}).json()
    assert body["usage"]["prompt_tokens"] == 7
    assert body["usage"]["completion_tokens"] == oa.DEFAULT_MAX_TOKENS


def test_chat_stream_ends_with_usage_then_done(client):
    body = {
        "model": "chat",
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": [{"type": "text", "text": "Hi there"}]}],
        "max_tokens": 6, "stream": True, "stream_options": {"include_usage": True},
    }  # fmt: skip
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        ev = _events(r.read().decode())
    assert ev[-1] == "[DONE]"
    usage = ev[-2]
    assert usage["choices"] == [] and usage["usage"] == {
        "prompt_tokens": 3 + (3 + 3) + (3 + 2), "completion_tokens": 6, "total_tokens": 20,
    }  # fmt: skip
    chunks = ev[:-2]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert oa.count_tokens(text) == 6
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_stream_without_include_usage_has_no_usage_chunk(client):
    with client.stream("POST", "/v1/completions",
                       json={"prompt": "x y", "max_tokens": 3, "stream": True}) as r:  # fmt: skip
        ev = _events(r.read().decode())
    assert ev[-1] == "[DONE]" and all("usage" not in e for e in ev[:-1])
    assert [e["choices"][0]["text"] for e in ev[:-1]] == [oa.token_text(i) for i in range(3)]


@pytest.mark.parametrize(
    ("path", "body", "code", "kind"),
    [
        ("/v1/completions", {"model": "other", "prompt": "x"}, 404, "NotFoundError"),
        ("/v1/completions", {"prompt": "x", "max_tokens": 0}, 400, "BadRequestError"),
        ("/v1/completions", {"max_tokens": 3}, 400, "BadRequestError"),
        ("/v1/completions", {"prompt": ["a", "b"]}, 400, "BadRequestError"),
        ("/v1/chat/completions", {"messages": []}, 400, "BadRequestError"),
        ("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "x"}]}, 400,
         "BadRequestError"),
    ],
)  # fmt: skip
def test_bad_requests_get_vllm_error_objects(client, path, body, code, kind):
    r = client.post(path, json=body)
    assert r.status_code == code
    err = r.json()
    assert err["object"] == "error" and err["type"] == kind and err["code"] == code
    assert err["message"]


def test_an_oversized_body_is_refused(client):
    from computepool.serving.http import MAX_BODY_BYTES

    r = client.post("/v1/completions", content=b"{" + b" " * MAX_BODY_BYTES + b"}",
                    headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 413 and r.json()["object"] == "error"


def test_metrics_use_vllm_names_and_count_the_requests(client):
    before = read_load(client.get("/metrics").text, VLLM)
    client.post("/v1/completions", json={"prompt": "one two three", "max_tokens": 2})
    text = client.get("/metrics").text
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting",
                 "vllm:gpu_cache_usage_perc", "vllm:prompt_tokens_total",
                 "vllm:generation_tokens_total", "vllm:request_success_total",
                 "vllm:time_to_first_token_seconds_bucket"):  # fmt: skip
        assert name in text, name
    after = read_load(text, VLLM)
    assert after.requests_total == before.requests_total + 1
    assert after.prompt_tokens_total == before.prompt_tokens_total + 3
    assert after.generation_tokens_total == before.generation_tokens_total + 2
    assert after.ttft_count == before.ttft_count + 1


def test_health_is_503_while_loading():
    app = replica_app(replica_timing("qwen2.5-1.5b", "H800"), 60.0, served_name="chat")
    with TestClient(app) as c:
        assert c.get("/health").status_code == 503
        r = c.post("/v1/completions", json={"prompt": "x"})
        assert r.status_code == 503 and r.json()["object"] == "error"
