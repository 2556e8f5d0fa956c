"""HTTP faces of the live serving pieces: the emulated replica and a service's stable endpoint.

* ``replica_app(timing, served_name)``: vLLM's OpenAI API in front of an ``EmulatedEngine`` —
  ``GET /v1/models``, ``POST /v1/completions`` and ``POST /v1/chat/completions`` (OpenAI
  bodies; whole answers with ``usage``, or server-sent events with a last usage chunk when
  ``stream_options.include_usage`` is set, then ``data: [DONE]``); ``GET /metrics`` under
  vLLM's Prometheus names; ``GET /health`` (503 until the modelled start-up time has passed).
  Errors are vLLM's error objects (a bad body is a 400, an unknown model a 404).
* ``endpoint_app(replicas)``: the service's stable address; forwards each request (streamed)
  to the healthy replica with the fewest requests in flight. ``replicas()`` is asked on every
  request, so replicas the supervisor adds, restarts or removes are picked up at once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from computepool.serving import openai_api as oa
from computepool.serving.emulator import EmulatedEngine, ReplicaTiming, metrics_text

#: A request body larger than this is refused (the prompt bound, with room for JSON).
MAX_BODY_BYTES = 8 << 20


def _sse(obj: dict | str) -> str:
    data = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
    return f"data: {data}\n\n"


def replica_app(
    timing: ReplicaTiming,
    start_delay_s: float | None = None,
    name: str = "",
    batch: int = 16,
    served_name: str | None = None,
) -> FastAPI:
    engine = EmulatedEngine(timing)
    ready_at = time.monotonic() + (timing.start_s if start_delay_s is None else start_delay_s)
    label = name or timing.label
    served = served_name or timing.model.name
    max_len = int(min(timing.kv_cap, 1 << 20))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        task = asyncio.create_task(engine.run())
        yield
        task.cancel()

    app = FastAPI(title=f"EMULATED replica {label}", lifespan=lifespan)

    def error(code: int, message: str, kind: str) -> JSONResponse:
        return JSONResponse(oa.error_body(message, code, kind), status_code=code)

    @app.middleware("http")
    async def bounded(request: Request, call_next):
        size = request.headers.get("content-length", "0")
        if not size.isdigit() or int(size) > MAX_BODY_BYTES:
            return error(413, f"request body above {MAX_BODY_BYTES} bytes", "BadRequestError")
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def bad_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid body"}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return error(400, f"{where}: {first.get('msg')}" if where else first["msg"],
                     "BadRequestError")  # fmt: skip

    def refuse(req: oa._Request) -> JSONResponse | None:
        if time.monotonic() < ready_at:
            return error(503, "loading weights (emulated)", "ServiceUnavailableError")
        if req.model is not None and req.model != served:
            return error(404, f"The model `{req.model[:128]}` does not exist.", "NotFoundError")
        return None

    @app.get("/health")
    async def health() -> dict:
        if time.monotonic() < ready_at:
            raise HTTPException(503, "loading weights (emulated)")
        return {"status": "ok", "replica": label, "emulated": True}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> str:
        return metrics_text(engine.stats, served)

    @app.get("/v1/models")
    async def models() -> dict:
        return oa.models_body(served, max_len)

    async def answer(req: oa._Request, prompt: int, chat: bool) -> Response:
        if prompt > oa.MAX_PROMPT_TOKENS:
            return error(400, f"the prompt has {prompt} tokens, above {oa.MAX_PROMPT_TOKENS}",
                         "BadRequestError")  # fmt: skip
        out = oa.output_tokens(req)
        rid = oa.new_id(chat)
        if not req.stream:
            n = 0
            async for _ in engine.generate(prompt, out):
                n += 1
            text = "".join(oa.token_text(i) for i in range(n))
            return JSONResponse(oa.completion_body(rid, served, chat, text, prompt, n))

        async def events():
            # one chunk per token; after the first, chunks go out in writes of ``batch``
            # (fewer writes for a CPU-bound host; the last of a batch is sent when produced)
            buf: list[str] = []
            if chat:
                buf.append(_sse(oa.chunk(rid, served, chat, "", role=True)))
            n = 0
            async for i in engine.generate(prompt, out):
                n += 1
                fin = "length" if n == out else None
                buf.append(_sse(oa.chunk(rid, served, chat, oa.token_text(i), fin)))
                if i == 0 or len(buf) >= batch:
                    yield "".join(buf)
                    buf.clear()
            if req.include_usage:
                buf.append(_sse(oa.usage_chunk(rid, served, chat, prompt, n)))
            buf.append(_sse("[DONE]"))
            yield "".join(buf)

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/v1/completions")
    async def completions(req: oa.CompletionRequest) -> Response:
        if (no := refuse(req)) is not None:
            return no
        try:
            prompt = req.prompt_tokens()
        except ValueError as exc:
            return error(400, str(exc), "BadRequestError")
        return await answer(req, prompt, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(req: oa.ChatRequest) -> Response:
        if (no := refuse(req)) is not None:
            return no
        return await answer(req, req.prompt_tokens(), chat=True)

    return app


def endpoint_app(replicas: Callable[[], list[str]], name: str = "service") -> FastAPI:
    inflight: dict[str, int] = {}
    state: dict[str, httpx.AsyncClient] = {}

    def client_of() -> httpx.AsyncClient:
        # created on first use: a mounted sub-application gets no lifespan events
        if "client" not in state:
            state["client"] = httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=2.0))
        return state["client"]

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if "client" in state:
            await state["client"].aclose()

    app = FastAPI(title=f"endpoint {name}", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict:
        return {"service": name, "replicas": replicas()}

    async def forward(request: Request, path: str) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, f"request body above {MAX_BODY_BYTES} bytes")
        urls = replicas()
        if not urls:
            raise HTTPException(503, f"service {name!r} has no healthy replica")
        url = min(urls, key=lambda u: inflight.get(u, 0))
        inflight[url] = inflight.get(url, 0) + 1
        client = client_of()
        try:
            upstream = await client.send(
                client.build_request("POST", f"{url}{path}", content=body,
                                     headers={"content-type": "application/json"}),
                stream=True,
            )  # fmt: skip
        except httpx.HTTPError as exc:
            inflight[url] -= 1
            raise HTTPException(502, f"replica {url} failed: {exc}") from None

        async def relay():
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                await upstream.aclose()
                inflight[url] -= 1

        kind = upstream.headers.get("content-type", "application/json")
        return StreamingResponse(relay(), status_code=upstream.status_code, media_type=kind)

    @app.post("/v1/completions")
    async def complete(request: Request) -> Response:
        return await forward(request, "/v1/completions")

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await forward(request, "/v1/chat/completions")

    return app
