"""The gateway's activator: a request for a service scaled to zero waits while a replica
starts (Knative Serving's activator, in front of ServerlessLLM-style cold starts).

A service with no replica ready whose directory says it scales to zero (``bounds``) gets its
request *held*: at most ``queue`` held per service, a tenant at most half of them (the
tenant's rate limit was applied before: a tenant hammering a cold model is refused by its
own limit and its share, never by filling everyone's queue), each at most ``max_wait_s``.
Holding a request wakes the live service's loop, whose serving controller starts a replica
(``serving/live_mux.py``); the activator probes the starting replicas' readiness path itself
(every ``POLL_S``) and forwards to the first that answers. The time from the first held request
to that answer is the service's cold start (``cpool_service_cold_starts_total``,
``cpool_service_cold_start_seconds``). Refusals: 503 ``activator_queue_full`` or
``cold_start_timeout`` with ``Retry-After``; 429 ``activator_share_exceeded`` for a tenant
over its share.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import aiohttp
from fastapi.responses import JSONResponse

from computepool.server import gateway_schemas as gs

if TYPE_CHECKING:
    from computepool.server.gateway import Gateway

#: Seconds between two looks at a held service's replicas.
POLL_S = 0.05
#: Retry-After of a refusal when no cold start was measured yet.
RETRY_S = 5.0


def _retry_after(gw: Gateway, name: str) -> float:
    info = next((s for s in gw.directory.services() if s.name == name), None)
    last = None if info is None else info.cold_start_s
    return RETRY_S if last is None else max(1.0, last)


async def _probe(gw: Gateway, starting: list[tuple[str, str]]) -> list[str]:
    """Base URLs of starting replicas whose readiness path answers 200 now."""
    assert gw.client is not None
    out = []
    for base, ready in starting:
        try:
            async with gw.client.get(ready, timeout=aiohttp.ClientTimeout(total=1.0)) as r:
                if r.status == 200:
                    out.append(base)
        except (TimeoutError, aiohttp.ClientError):
            continue
    return out


async def _ready_urls(gw: Gateway, name: str) -> list[str]:
    """``_probe`` of the service's starting replicas, shared by the requests held for it: at
    most one probe round per ``POLL_S`` per service, however many wait."""
    now = time.monotonic()
    seen = gw.probes.get(name)
    if seen is not None and now - seen[0] < POLL_S:
        return seen[1]
    gw.probes[name] = (now, [])  # the others wait for this round's answer
    urls = await _probe(gw, gw.directory.starting(name))  # type: ignore[attr-defined]
    gw.probes[name] = (time.monotonic(), urls)
    return urls


def _ready(gw: Gateway, name: str) -> None:
    took = gw.directory.ready(name)  # type: ignore[attr-defined]
    if took is not None and gw.metrics is not None:
        gw.metrics.cold_starts.labels(name).inc()
        gw.metrics.cold_start_seconds.labels(name).observe(took)


async def activate(gw: Gateway, name: str, tenant_id: int) -> list[str] | JSONResponse:
    """Replica URLs once one is ready, or the refusal to send."""
    d = gw.directory
    bounds = getattr(d, "bounds", None)
    b = bounds(name) if bounds is not None else None
    if b is None:
        return gs.error(
            503,
            f"service {name!r} has no replica ready (starting or scaling); retry shortly",
            "no_replica_ready",
            retry_after_s=RETRY_S,
        )
    # a replica already up but not yet seen healthy by the controller: no cold start
    urls = await _ready_urls(gw, name)
    if urls:
        return urls
    why = d.hold(name, tenant_id)  # type: ignore[attr-defined]
    if why:
        if gw.metrics is not None:
            gw.metrics.activator_refused.labels(name, why).inc()
        if why == "tenant":
            return gs.error(
                429,
                f"service {name!r} is starting and your requests already hold "
                f"{b.per_tenant} of its {b.queue} places; retry once it is up",
                "activator_share_exceeded",
                retry_after_s=_retry_after(gw, name),
            )
        return gs.error(
            503,
            f"service {name!r} is starting and {b.queue} requests already wait for it; "
            "retry shortly",
            "activator_queue_full",
            retry_after_s=_retry_after(gw, name),
        )
    try:
        d.wake()  # type: ignore[attr-defined]
        end = time.monotonic() + b.max_wait_s
        while True:
            urls = d.endpoints(name)
            if not urls:
                urls = await _ready_urls(gw, name)
            if urls:
                _ready(gw, name)
                return urls
            if time.monotonic() >= end:
                if gw.metrics is not None:
                    gw.metrics.activator_refused.labels(name, "timeout").inc()
                return gs.error(
                    503,
                    f"service {name!r} did not start within {b.max_wait_s:g} s; retry shortly",
                    "cold_start_timeout",
                    retry_after_s=_retry_after(gw, name),
                )
            await asyncio.sleep(POLL_S)
    finally:
        d.unhold(name, tenant_id)  # type: ignore[attr-defined]
