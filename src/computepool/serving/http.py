"""HTTP faces of the live serving pieces: the emulated replica and a service's stable endpoint.

* ``replica_app(timing)``: ``POST /v1/completions`` (``{"prompt_tokens", "max_tokens"}``)
  streams one line per generated token from an ``EmulatedEngine``; ``GET /metrics`` (Prometheus
  text), ``GET /health`` (503 until the modelled start-up time has passed).
* ``endpoint_app(replicas)``: the service's stable address; forwards each request (streamed)
  to the healthy replica with the fewest requests in flight. ``replicas()`` is asked on every
  request, so replicas the supervisor adds, restarts or removes are picked up at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, HTTPException
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field

from computepool.serving.emulator import EmulatedEngine, ReplicaTiming, metrics_text


class Completion(BaseModel):
    prompt_tokens: int = Field(ge=1, le=1_000_000)
    max_tokens: int = Field(1, ge=1, le=100_000)


def replica_app(
    timing: ReplicaTiming, start_delay_s: float | None = None, name: str = "", batch: int = 16
) -> FastAPI:
    engine = EmulatedEngine(timing)
    ready_at = time.monotonic() + (timing.start_s if start_delay_s is None else start_delay_s)
    label = name or timing.label

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        task = asyncio.create_task(engine.run())
        yield
        task.cancel()

    app = FastAPI(title=f"EMULATED replica {label}", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict:
        if time.monotonic() < ready_at:
            raise HTTPException(503, "loading weights (emulated)")
        return {"status": "ok", "replica": label, "emulated": True}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> str:
        return metrics_text(engine.stats, label)

    @app.post("/v1/completions")
    async def complete(req: Completion) -> StreamingResponse:
        if time.monotonic() < ready_at:
            raise HTTPException(503, "loading weights (emulated)")

        async def tokens():
            # one line per token; after the first, lines go out in batches of ``batch`` (fewer
            # writes for a CPU-bound host; the last line of a batch is sent when produced)
            buf: list[str] = []
            async for i in engine.generate(req.prompt_tokens, req.max_tokens):
                buf.append(f"{i}\n")
                if i == 0 or len(buf) >= batch:
                    yield "".join(buf)
                    buf.clear()
            if buf:
                yield "".join(buf)

        return StreamingResponse(tokens(), media_type="text/plain")

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

    @app.post("/v1/completions")
    async def complete(req: Completion) -> StreamingResponse:
        urls = replicas()
        if not urls:
            raise HTTPException(503, f"service {name!r} has no healthy replica")
        url = min(urls, key=lambda u: inflight.get(u, 0))
        inflight[url] = inflight.get(url, 0) + 1
        client = client_of()
        try:
            upstream = await client.send(
                client.build_request("POST", f"{url}/v1/completions", json=req.model_dump()),
                stream=True,
            )
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

        return StreamingResponse(relay(), status_code=upstream.status_code,
                                 media_type="text/plain")  # fmt: skip

    return app
