"""The metering the pool adds around llama-cpp-python's server (no llama.cpp needed: a fake
OpenAI server without metrics or stream usage stands in for it)."""

import json

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

from computepool.serving.engines.llama_cpp_python import Metered, prompt_counter
from computepool.serving.engines.metrics import VLLM, read_load


def _fake_server() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/completions")
    async def complete(body: dict):
        n = int(body.get("max_tokens", 3))
        if not body.get("stream"):
            return {"id": "c1", "object": "text_completion", "choices": [{"text": "x " * n}],
                    "usage": {"prompt_tokens": 11, "completion_tokens": n,
                              "total_tokens": 11 + n}}  # fmt: skip

        async def events():
            for i in range(n):
                chunk = {"id": "c2", "object": "text_completion", "created": 1, "model": "m",
                         "choices": [{"text": f" t{i}", "index": 0}]}  # fmt: skip
                yield f"data: {json.dumps(chunk)}\r\n\r\n"
            yield ": ping\r\n\r\n"
            yield "data: [DONE]\r\n\r\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def _client() -> tuple[TestClient, Metered]:
    m = Metered(_fake_server(), "tiny", prompt_counter(lambda s: len(s.split())))
    return TestClient(m), m


def test_whole_answers_are_counted_from_their_usage():
    c, m = _client()
    assert c.post("/v1/completions", json={"prompt": "a b", "max_tokens": 4}).status_code == 200
    load = read_load(c.get("/metrics").text, VLLM)
    assert (load.requests_total, load.prompt_tokens_total, load.generation_tokens_total) == (
        1, 11, 4)  # fmt: skip
    assert load.running == load.waiting == 0 and load.ttft_count == 1
    assert c.get("/health").status_code == 200


def test_a_stream_gets_its_usage_chunk_and_is_counted():
    c, m = _client()
    body = {"prompt": "one two three", "max_tokens": 5, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    with c.stream("POST", "/v1/completions", json=body) as r:
        lines = [ln for ln in r.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    usage = json.loads(lines[-2][6:])
    assert usage["choices"] == [] and usage["usage"] == {
        "prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}  # fmt: skip
    assert m.stats.prompt_tokens_total == 3 and m.stats.generated_tokens_total == 5
    without = {"prompt": "a", "max_tokens": 2, "stream": True}
    with c.stream("POST", "/v1/completions", json=without) as r:
        lines = [ln for ln in r.iter_lines() if ln.startswith("data: ")]
    assert len(lines) == 3 and all("usage" not in ln for ln in lines)
    assert m.stats.completed_total == 2 and m.stats.prompt_tokens_total == 4


def test_chat_prompt_counts_the_messages_contents():
    count = prompt_counter(lambda s: len(s.split()))
    body = {"messages": [{"role": "user", "content": "a b c"},
                         {"role": "user", "content": [{"type": "text", "text": "d e"}]}]}  # fmt: skip
    assert count(body) == 5 and count({"prompt": [1, 2, 3]}) == 3
