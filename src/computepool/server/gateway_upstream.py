"""The gateway's side towards the replicas: send a request (another replica when one cannot
be reached before it answered), read an answer (bounded), pass a stream on event by event, and
one request's bookkeeping when it ends (metering, rate-limit charge, metrics, TTFT).

The upstream client is aiohttp: httpx's connection pool cost ~2.4 ms CPU a proxied request at
32 in flight against aiohttp's ~0.2 ms (BENCHMARKS.md, "OpenAI-compatible gateway").
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from fastapi.responses import JSONResponse, StreamingResponse

from computepool.server import gateway_schemas as gs
from computepool.server.service_directory import ServiceInfo
from computepool.server.sse import SseTap, usage_counts
from computepool.server.store import Principal

if TYPE_CHECKING:
    from computepool.server.gateway import Gateway

log = logging.getLogger("computepool.gateway")
#: Failures before the replica answered: another replica may take the request.
RETRYABLE = (
    aiohttp.ClientConnectorError,
    aiohttp.ServerDisconnectedError,
    aiohttp.ConnectionTimeoutError,
)
#: Upstream failures after the replica answered, or that no other replica would fix.
UPSTREAM_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


async def send(
    gw: Gateway, urls: list[str], path: str, body: dict
) -> tuple[str, aiohttp.ClientResponse] | JSONResponse:
    assert gw.client is not None, "the gateway starts with the app"
    last = ""
    for url in gw.order(urls):
        gw.inflight[url] = gw.inflight.get(url, 0) + 1
        try:
            return url, await gw.client.post(f"{url}{path}", json=body)
        except RETRYABLE as exc:
            gw.left(url)
            last = type(exc).__name__
            log.info("gateway: replica %s failed before answering (%s); trying another", url, last)
        except UPSTREAM_ERRORS as exc:
            gw.left(url)
            return gs.error(502, f"the replica failed: {type(exc).__name__}", "upstream_error")
    return gs.error(
        503,
        f"no replica of the service could be reached ({last}); retry shortly",
        "no_replica_ready",
        retry_after_s=5,
    )


async def read_bounded(resp: aiohttp.ClientResponse) -> bytes | None:
    buf = bytearray()
    async for chunk in resp.content.iter_any():
        buf += chunk
        if len(buf) > gs.UPSTREAM_BODY_MAX:
            return None
    return bytes(buf)


def is_openai_error(content: bytes) -> bool:
    """Whether a replica's error answer is OpenAI's shape (passed on as it is)."""
    try:
        doc = json.loads(content)
    except (ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("error"), dict)


def answer_text(answer: dict[str, Any]) -> str:
    out = []
    for c in answer.get("choices") or []:
        if isinstance(c, dict):
            msg = c.get("message") if isinstance(c.get("message"), dict) else {}
            text = c.get("text") or msg.get("content") or ""
            if isinstance(text, str):
                out.append(text)
    return "".join(out)


@dataclass
class Call:
    """One request's bookkeeping: metering, limits, metrics, when it ends."""

    gw: Gateway
    caller: Principal
    info: ServiceInfo
    body: gs._Request
    t0: float
    ttft: float | None = None

    def done(
        self, code: int, usage: Any, text: str, chunks: int | None = None, metered: bool = False
    ) -> None:
        """``metered``: count tokens although ``code`` is not 2xx (a stream broken off)."""
        gw, tenant = self.gw, self.caller.tenant or "?"
        gw.end(self.info.name)
        prompt = completion = 0
        if 200 <= code < 300 or metered:
            counts = usage_counts(usage)
            estimated = counts is None
            if counts is None:
                prompt = gs.estimate_tokens(gs.prompt_text(self.body))
                completion = chunks if chunks is not None else gs.estimate_tokens(text)
            else:
                prompt, completion = counts
            assert self.caller.tenant_id is not None
            gw.meter.add(self.caller.tenant_id, self.info.name, self.info.model or self.info.name,
                         prompt, completion, estimated)  # fmt: skip
            gw.limiter.charge(self.caller.tenant_id, prompt + completion, time.monotonic())
        if gw.metrics is not None:
            gw.metrics.done(tenant, self.info.name, code, prompt, completion,
                            time.monotonic() - self.t0)  # fmt: skip
            if self.ttft is not None:
                gw.metrics.ttft.labels(self.info.name).observe(self.ttft)
        if self.ttft is not None and self.info.ttft_slo_s is not None:
            tally = gw.slo.setdefault(self.info.name, [0, 0])
            tally[0] += int(self.ttft <= self.info.ttft_slo_s)
            tally[1] += 1


class Relay(StreamingResponse):
    """A stream that lets its replica go however it ends: also when the client left before
    the first chunk (the generator then never starts, so its ``finally`` never runs)."""

    def __init__(self, call: Call, url: str, resp: aiohttp.ClientResponse) -> None:
        self.tap = SseTap(drop_usage=not call.body.include_usage)
        self.call, self.url, self.upstream, self.code = call, url, resp, 200
        self.ended = False
        super().__init__(
            self._events(),
            status_code=200,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._end()

    def _end(self) -> None:
        if self.ended:
            return
        self.ended = True
        self.call.done(self.code, self.tap.usage, "", self.tap.text_chunks, metered=True)
        self.upstream.release()
        self.call.gw.left(self.url)  # last: the request is fully accounted for

    async def _events(self):
        call, tap = self.call, self.tap
        try:
            async for chunk in self.upstream.content.iter_any():
                out = tap.feed(chunk)
                if call.ttft is None and tap.text_chunks:
                    call.ttft = time.monotonic() - call.t0
                if out:
                    yield out
            rest = tap.close()
            if rest:
                yield rest
        except UPSTREAM_ERRORS as exc:
            # the replica broke off: what was sent is sent (no [DONE]); metered as counted
            self.code = 502
            log.warning("gateway: stream from %s broke off: %s", self.url, type(exc).__name__)
        finally:
            self._end()
