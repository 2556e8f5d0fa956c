"""A TEST DOUBLE of an OpenAI-compatible model server (what a vLLM replica answers), served by
uvicorn on a free loopback port in a thread: ``/v1/models``, ``/v1/completions``,
``/v1/chat/completions`` (streamed by SSE with a final usage chunk when asked), ``/health``.

It "generates" ``max_tokens`` tokens ``tok0 tok1 ...`` and counts the prompt as one token per
whitespace-separated word. ``usage=False`` answers without any usage (to test the gateway's
own count); ``delay_s`` waits before each streamed token. Each answer's ``id`` names the
replica, so tests can see which one answered.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prompt_tokens(doc: dict) -> int:
    if "messages" in doc:
        text = " ".join(str(m.get("content") or "") for m in doc["messages"])
    else:
        p = doc.get("prompt", "")
        text = p if isinstance(p, str) else " ".join(map(str, p))
    return max(len(text.split()), 1)


def double_app(name: str, model: str, usage: bool = True, delay_s: float = 0.0) -> FastAPI:
    app = FastAPI()
    app.state.seen = []  # request bodies, for tests

    @app.get("/health")
    async def health() -> dict:
        return {"ok": True}

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": model, "object": "model"}]}

    async def answer(request: Request, chat: bool):
        doc = await request.json()
        app.state.seen.append(doc)
        if doc.get("model") != model:
            return JSONResponse(
                {"error": {"message": "no such model", "type": "NotFoundError", "code": 404}},
                status_code=404,
            )
        # at most 64 tokens whatever is asked (the request is recorded in ``seen``)
        n, p = min(int(doc.get("max_tokens") or 16), 64), _prompt_tokens(doc)
        kind = "chat.completion" if chat else "text_completion"
        use = {"prompt_tokens": p, "completion_tokens": n, "total_tokens": p + n}
        if not doc.get("stream"):
            text = " ".join(f"tok{i}" for i in range(n))
            choice = (
                {"index": 0, "message": {"role": "assistant", "content": text}}
                if chat
                else {"index": 0, "text": text}
            )
            body = {"id": f"cmpl-{name}", "object": kind, "model": model, "choices": [choice]}
            if usage:
                body["usage"] = use
            return JSONResponse(body)
        want_usage = bool((doc.get("stream_options") or {}).get("include_usage"))

        async def events():
            for i in range(n):
                if delay_s:
                    await asyncio.sleep(delay_s)
                piece = {"delta": {"content": f"tok{i} "}} if chat else {"text": f"tok{i} "}
                chunk = {"id": f"cmpl-{name}", "object": f"{kind}.chunk", "model": model,
                         "choices": [{"index": 0, **piece, "finish_reason": None}]}  # fmt: skip
                if want_usage:
                    chunk["usage"] = None
                yield f"data: {json.dumps(chunk)}\n\n"
            if usage and want_usage:
                last = {"id": f"cmpl-{name}", "object": f"{kind}.chunk", "model": model,
                        "choices": [], "usage": use}  # fmt: skip
                yield f"data: {json.dumps(last)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await answer(request, chat=False)

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        return await answer(request, chat=True)

    return app


@contextmanager
def serve_double(app: FastAPI, port: int | None = None, lifespan: str = "off"):
    """Serve ``app`` on 127.0.0.1 in a thread; yields its base URL; stops it on exit."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > end or not thread.is_alive():
            raise RuntimeError("the test double did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
