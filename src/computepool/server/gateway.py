"""The OpenAI-compatible gateway on the server's port: ``GET /v1/models``,
``POST /v1/completions`` and ``POST /v1/chat/completions`` (streamed by server-sent events,
passed on chunk by chunk), for a tenant's bearer token.

A request names a service as its ``model``; the gateway sends it to a healthy replica of that
service (fewest requests in flight, ties in turn), trying another replica when one cannot be
reached before it answered; a service scaled to zero has its request held by the activator
(``activator.py``) while a replica starts. The tenant's rate limits (requests a second, tokens a minute;
``ratelimit.py``) are checked first; the prompt and completion tokens the replica reports
(``usage``; in a stream, its final usage chunk, which the gateway always asks for) are
metered per tenant, service and model (``token_meter.py``). A replica that reports no usage
is metered by the gateway's own count (prompt: four characters a token; completion: one
token per streamed chunk with text, or four characters a token), marked as estimated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field

import aiohttp
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from computepool.server import gateway_schemas as gs
from computepool.server.activator import activate
from computepool.server.db import TenantRow
from computepool.server.gateway_metrics import GatewayMetrics
from computepool.server.gateway_upstream import (
    UPSTREAM_ERRORS,
    Call,
    Relay,
    answer_text,
    is_openai_error,
    read_bounded,
    send,
)
from computepool.server.ratelimit import Limits, TenantLimiter
from computepool.server.service_directory import (
    SHARED,
    ServiceDirectory,
    ServiceInfo,
    StaticDirectory,
)
from computepool.server.store import Principal
from computepool.server.token_meter import TokenMeter

log = logging.getLogger("computepool.gateway")


@dataclass(frozen=True)
class GatewayConfig:
    #: Limits of a tenant that sets none (``cpool serve --gateway-requests-per-s`` ...).
    default_limits: Limits = Limits()
    #: Seconds a tenant's limits read from the store are used before being read again.
    limits_ttl_s: float = 2.0
    #: Seconds between writes of metered tokens to the store.
    flush_s: float = 1.0
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 300.0
    #: A price list (YAML) instead of the shipped one.
    token_prices: str | None = None


@dataclass
class Gateway:
    directory: ServiceDirectory
    meter: TokenMeter
    metrics: GatewayMetrics | None = None
    config: GatewayConfig = field(default_factory=GatewayConfig)
    limiter: TenantLimiter = field(default_factory=TenantLimiter)
    inflight: dict[str, int] = field(default_factory=dict)
    #: Per service: [streamed requests within the TTFT objective, streamed requests].
    slo: dict[str, list[int]] = field(default_factory=dict)
    #: The upstream client: aiohttp (httpx's connection pool costs ~2.4 ms CPU a request at
    #: 32 in flight against aiohttp's ~0.2 ms: benchmarks/gateway_overhead.py).
    client: aiohttp.ClientSession | None = None
    _limits: dict[int, tuple[float, Limits]] = field(default_factory=dict)
    #: The activator's last readiness probe per service: (when, ready replica URLs).
    probes: dict[str, tuple[float, list[str]]] = field(default_factory=dict)
    _turn: int = 0
    _task: asyncio.Task | None = None

    # ---- lifecycle ------------------------------------------------------------------
    async def start(self, sessions, lock) -> None:
        cfg = self.config
        self.client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=2048, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(
                total=None, connect=cfg.connect_timeout_s, sock_read=cfg.read_timeout_s
            ),
            auto_decompress=False,  # bytes pass on as the replica sent them
        )
        self._task = asyncio.create_task(self._flush_loop(sessions, lock))

    async def stop(self, sessions, lock) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.client is not None:
            await self.client.close()
        self.flush(sessions, lock)

    def flush(self, sessions, lock) -> None:
        try:
            self.meter.flush(sessions, lock)
        except Exception:  # kept for the next flush
            log.exception("gateway: writing metered tokens failed (kept for the next try)")

    async def _flush_loop(self, sessions, lock) -> None:
        while True:
            await asyncio.sleep(self.config.flush_s)
            if self.meter.pending():
                await run_in_threadpool(self.flush, sessions, lock)

    # ---- decisions -------------------------------------------------------------------
    def left(self, url: str) -> None:
        """A request to ``url`` ended (replicas with none in flight are forgotten)."""
        n = self.inflight.get(url, 0) - 1
        if n > 0:
            self.inflight[url] = n
        else:
            self.inflight.pop(url, None)

    def order(self, urls: list[str]) -> list[str]:
        """Replicas to try: fewest requests in flight first, ties taken in turn."""
        if len(urls) > 1:
            k = self._turn % len(urls)
            self._turn += 1
            urls = urls[k:] + urls[:k]
        return sorted(urls, key=lambda u: self.inflight.get(u, 0))

    def limits_of(self, sessions, tenant_id: int, now: float) -> Limits:
        have = self._limits.get(tenant_id)
        if have is not None and now - have[0] < self.config.limits_ttl_s:
            return have[1]
        with sessions() as s:
            row = s.get(TenantRow, tenant_id)
            rps, tpm = (None, None) if row is None else (row.requests_per_s, row.tokens_per_min)
        d = self.config.default_limits
        lim = Limits(
            rps if rps is not None else d.requests_per_s,
            tpm if tpm is not None else d.tokens_per_min,
        )
        self._limits[tenant_id] = (now, lim)
        return lim

    def begin(self, service: str) -> None:
        """A request for ``service`` is in flight (the controller's idle clock stops)."""
        if hasattr(self.directory, "begin"):
            self.directory.begin(service)

    def end(self, service: str) -> None:
        if hasattr(self.directory, "end"):
            self.directory.end(service)

    def visible(self, caller: Principal) -> list[ServiceInfo]:
        return [s for s in self.directory.services() if s.usable_by(caller.tenant, caller.is_admin)]

    def attainment(self, service: str) -> float | None:
        ok, n = self.slo.get(service, (0, 0))
        return ok / n if n else None


def pool_services(gw: Gateway | None, caller: Principal) -> list[dict]:
    """The services the caller may use, for ``GET /v1/pool``: replicas ready and desired,
    load, TTFT objective attainment through the gateway, and cold starts of those that scale
    to zero."""
    if gw is None:
        return []
    return [
        {
            "name": s.name,
            "owner": "shared" if s.tenant in SHARED else s.tenant,
            "model": s.model,
            "replicas_ready": s.ready,
            "replicas_desired": s.desired,
            "load_rps": s.load_rps,
            "ttft_slo_s": s.ttft_slo_s,
            "slo_attainment": gw.attainment(s.name),
            "scale_to_zero": s.scale_to_zero,
            "cold_starts": s.cold_starts,
            "cold_start_s": s.cold_start_s,
        }
        for s in gw.visible(caller)
    ]


def empty_gateway(metrics: GatewayMetrics | None, config: GatewayConfig) -> Gateway:
    from computepool.catalog.token_prices import load_token_prices

    return Gateway(
        StaticDirectory(), TokenMeter(load_token_prices(config.token_prices)), metrics, config
    )


router = APIRouter(prefix="/v1", tags=["openai"])


def _ctx(request: Request):
    return request.app.state.ctx


async def _caller(request: Request) -> Principal | JSONResponse:
    auth = request.headers.get("authorization", "")
    if not auth.lower().startswith("bearer "):
        return gs.error(401, "missing 'Authorization: Bearer <token>' header", "invalid_api_key")
    ctx = _ctx(request)
    token = auth[7:].strip()
    p = (
        await run_in_threadpool(ctx.principal, token)
        if ctx.lookup_is_remote
        else ctx.principal(token)
    )
    if p is None:
        return gs.error(401, "unknown or revoked token", "invalid_api_key")
    return p


@router.get("/models")
async def list_models(request: Request) -> Response:
    """The services (served model names) the caller's token may use (OpenAI's model list)."""
    caller = await _caller(request)
    if isinstance(caller, JSONResponse):
        return caller
    gw: Gateway = _ctx(request).gateway
    data = [
        {
            "id": s.name,
            "object": "model",
            "created": 0,
            "owned_by": "computepool" if s.tenant in SHARED else s.tenant,
            "root": s.model or s.name,
        }
        for s in gw.visible(caller)
    ]
    return JSONResponse({"object": "list", "data": data})


@router.post("/completions", openapi_extra=gs.openapi_body(gs.CompletionIn))
async def completions(request: Request) -> Response:
    """OpenAI's completions: ``model`` names a service; ``stream: true`` answers by SSE."""
    return await _proxy(request, gs.CompletionIn, "/v1/completions")


@router.post("/chat/completions", openapi_extra=gs.openapi_body(gs.ChatIn))
async def chat_completions(request: Request) -> Response:
    """OpenAI's chat completions: ``model`` names a service; ``stream: true`` answers by SSE."""
    return await _proxy(request, gs.ChatIn, "/v1/chat/completions")


def _standby(gw: Gateway, name: str) -> JSONResponse | None:
    """A standby server runs no replica and no controller round: it neither holds nor
    forwards a request, it refuses it at once with 503 and Retry-After (the lease's time to
    live), before the tenant's rate limit, so a client or load balancer retries elsewhere
    (``GET /healthz`` says ``role``: a load balancer checks it to send inference to the
    leader, as with Patroni's ``/leader`` check)."""
    ask = getattr(gw.directory, "standby_retry_s", None)
    retry = ask() if ask is not None else None
    if retry is None:
        return None
    if gw.metrics is not None:
        gw.metrics.activator_refused.labels(name, "standby").inc()
    return gs.error(
        503,
        "this server is a standby: the leading server runs the services; retry there "
        "(or here once this server leads)",
        "standby_not_serving",
        retry_after_s=retry,
    )


async def _proxy(request: Request, model: type[gs._Request], path: str) -> Response:
    t0 = time.monotonic()
    caller = await _caller(request)
    if isinstance(caller, JSONResponse):
        return caller
    if caller.tenant_id is None or caller.tenant is None:
        return gs.error(
            403, "the gateway meters tokens per tenant: use a tenant's token", "tenant_required"
        )
    parsed = gs.parse_body(await request.body(), model)
    if isinstance(parsed, JSONResponse):
        return parsed
    doc, body = parsed
    ctx = _ctx(request)
    gw: Gateway = ctx.gateway
    info = next((s for s in gw.visible(caller) if s.name == body.model), None)
    if info is None:
        return gs.error(
            404,
            f"The model '{body.model}' does not exist or you do not have access to it.",
            "model_not_found",
            "model",
        )
    standby = _standby(gw, info.name)
    if standby is not None:
        return standby
    now = time.monotonic()
    if ctx.lookup_is_remote:
        limits = await run_in_threadpool(gw.limits_of, ctx.sessions, caller.tenant_id, now)
    else:
        limits = gw.limits_of(ctx.sessions, caller.tenant_id, now)
    wait = gw.limiter.admit(caller.tenant_id, limits, now)
    if wait > 0:
        if gw.metrics is not None:
            gw.metrics.rate_limited.labels(caller.tenant).inc()
        return gs.error(
            429,
            f"rate limit of tenant {caller.tenant!r} reached ({_describe(limits)}); "
            f"retry in {wait:.1f} s",
            "rate_limit_exceeded",
            retry_after_s=wait,
        )
    gw.begin(info.name)  # in flight until Call.done (or a refusal below)
    urls = gw.directory.endpoints(info.name)
    if not urls:  # scaled to zero: the activator holds it while a replica starts
        got = await activate(gw, info.name, caller.tenant_id)
        if isinstance(got, JSONResponse):
            gw.end(info.name)
            return got
        urls = got
    up = gs.upstream_body(doc, body)
    sent = await send(gw, urls, path, up)
    if isinstance(sent, JSONResponse) and sent.status_code == 503 and info.scale_to_zero:
        # its replicas were stopped (idle) between the lookup and the send: hold it instead
        got = await activate(gw, info.name, caller.tenant_id)
        sent = got if isinstance(got, JSONResponse) else await send(gw, got, path, up)
    if isinstance(sent, JSONResponse):
        gw.end(info.name)
        return sent
    url, resp = sent
    call = Call(gw, caller, info, body, t0)
    if body.stream and resp.status == 200:
        return Relay(call, url, resp)
    try:
        content = await read_bounded(resp)
    except UPSTREAM_ERRORS as exc:
        call.done(502, None, "")
        return gs.error(502, f"the replica broke off: {type(exc).__name__}", "upstream_error")
    finally:
        resp.release()
        gw.left(url)
    if content is None:
        call.done(502, None, "")
        return gs.error(502, "the replica's answer was too large", "upstream_too_large")
    if resp.status >= 400 and not is_openai_error(content):
        # not an OpenAI error body: say what the replica answered, in the gateway's shape
        call.done(502, None, "")
        return gs.error(
            502,
            f"the replica answered {resp.status}: "
            f"{content[:300].decode('utf-8', errors='replace')}",
            "upstream_error",
        )
    usage, text = None, ""
    if resp.status == 200:
        with contextlib.suppress(ValueError, RecursionError):
            answer = json.loads(content)
            if isinstance(answer, dict):
                usage, text = answer.get("usage"), answer_text(answer)
    call.done(resp.status, usage, text)
    return Response(
        content,
        status_code=resp.status,
        media_type=resp.headers.get("content-type", "application/json"),
    )


def _describe(limits: Limits) -> str:
    parts = []
    if limits.requests_per_s is not None:
        parts.append(f"{limits.requests_per_s:g} requests/s")
    if limits.tokens_per_min is not None:
        parts.append(f"{limits.tokens_per_min:g} tokens/min")
    return ", ".join(parts)
