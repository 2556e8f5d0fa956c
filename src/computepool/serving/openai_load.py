"""Load against an OpenAI-compatible endpoint (the pool's gateway): requests sent at their
arrival times (an Azure LLM trace, or constant / Poisson arrivals), at most ``concurrency``
in flight, each streamed; per request the time to its first token (TTFT), its latency, its
status and the usage the server reported.

Open loop with a bound: a request whose arrival comes while ``concurrency`` requests are in
flight waits for a slot (the achieved rate then falls below the offered one, and says so).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import numpy as np

#: Prompt words sent at most (a trace's longest prompts are tens of thousands of tokens).
PROMPT_MAX = 8192


@dataclass(frozen=True)
class Plan:
    """What to send: arrival seconds, prompt and completion token counts."""

    t: np.ndarray
    prompt: np.ndarray
    output: np.ndarray


def constant_plan(rate: float, n: int, prompt: int, output: int) -> Plan:
    t = np.arange(n, dtype=float) / rate
    return Plan(t, np.full(n, float(prompt)), np.full(n, float(output)))


def poisson_plan(rate: float, n: int, prompt: int, output: int, seed: int = 0) -> Plan:
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, size=n)
    t = np.cumsum(gaps) - gaps[0]
    return Plan(t, np.full(n, float(prompt)), np.full(n, float(output)))


def trace_plan(source: str, kind: str, n: int, speed: float = 1.0) -> Plan:
    """The first ``n`` requests of an Azure LLM trace (shipped or a folder of its CSVs), time
    compressed ``speed``-fold."""
    from computepool.serving.streams import load_base

    base = load_base(source, kind)
    n = min(n, len(base.t))
    return Plan(base.t[:n] / speed, base.prompt[:n], base.output[:n])


@dataclass
class Result:
    sent: np.ndarray  # seconds after the start it was sent
    ttft: np.ndarray  # nan when failed
    latency: np.ndarray  # nan when failed
    status: np.ndarray  # HTTP status, 0: no answer
    prompt_tokens: np.ndarray
    completion_tokens: np.ndarray
    wall_s: float
    errors: Counter


def _body(model: str, prompt: float, output: float, max_tokens_cap: int) -> dict:
    words = int(min(max(prompt, 1), PROMPT_MAX))
    return {
        "model": model,
        "prompt": "hi " * words,
        "max_tokens": int(min(max(output, 1), max_tokens_cap)),
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def _one(client: httpx.AsyncClient, url: str, body: dict, res: Result, i: int) -> None:
    t0 = time.monotonic()
    try:
        async with client.stream("POST", url, json=body) as r:
            res.status[i] = r.status_code
            if r.status_code != 200:
                await r.aread()
                res.errors[f"HTTP {r.status_code}"] += 1
                return
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                doc = json.loads(line[6:])
                if math.isnan(res.ttft[i]) and doc.get("choices"):
                    res.ttft[i] = time.monotonic() - t0
                usage = doc.get("usage")
                if usage:
                    res.prompt_tokens[i] = usage.get("prompt_tokens", 0)
                    res.completion_tokens[i] = usage.get("completion_tokens", 0)
        res.latency[i] = time.monotonic() - t0
    except (httpx.HTTPError, ValueError) as exc:
        res.errors[type(exc).__name__] += 1


async def run(
    base_url: str,
    token: str,
    model: str,
    plan: Plan,
    concurrency: int = 64,
    max_tokens_cap: int = 4096,
    on_done: Callable[[int], None] | None = None,
    timeout_s: float = 300.0,
) -> Result:
    n = len(plan.t)
    nan = np.full(n, np.nan)
    res = Result(np.zeros(n), nan.copy(), nan.copy(), np.zeros(n, dtype=int),
                 np.zeros(n, dtype=int), np.zeros(n, dtype=int), 0.0, Counter())  # fmt: skip
    url = base_url.rstrip("/") + "/v1/completions"
    slots = asyncio.Semaphore(concurrency)
    done = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s, connect=10.0), limits=limits, headers=headers
    ) as client:
        start = time.monotonic()

        async def launch(i: int) -> None:
            nonlocal done
            await asyncio.sleep(max(0.0, start + float(plan.t[i]) - time.monotonic()))
            async with slots:
                res.sent[i] = time.monotonic() - start
                await _one(client, url, _body(model, plan.prompt[i], plan.output[i],
                                              max_tokens_cap), res, i)  # fmt: skip
            done += 1
            if on_done is not None:
                on_done(done)

        await asyncio.gather(*(launch(i) for i in range(n)))
        res.wall_s = time.monotonic() - start
    return res


def wait_ready(base_url: str, token: str, model: str, timeout_s: float) -> str | None:
    """Wait until the service has a replica ready (``GET /v1/pool``); None when it has, else
    why not (not a service the token may use, or still none ready at the timeout)."""
    end = time.monotonic() + timeout_s
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=10.0) as c:
        while True:
            try:
                r = c.get("/v1/pool")
            except httpx.HTTPError as exc:
                return f"{base_url}: {exc}"
            if r.status_code != 200:
                return f"GET /v1/pool answered {r.status_code}: {r.text[:200]}"
            mine = {s["name"]: s for s in r.json().get("services", [])}
            if model not in mine:
                return f"no service {model!r} for this token (it may use: {', '.join(sorted(mine)) or 'none'})"
            if mine[model]["replicas_ready"] > 0:
                return None
            if time.monotonic() >= end:
                return f"service {model!r} has no replica ready after {timeout_s:g} s"
            time.sleep(0.5)


def summary(res: Result, offered_s: float) -> dict:
    """Achieved rate, latency and TTFT percentiles (ms), errors, tokens a second."""
    ok = res.status == 200
    ok &= ~np.isnan(res.latency)
    lat, ttft = res.latency[ok], res.ttft[ok & ~np.isnan(res.ttft)]

    def pct(a: np.ndarray, q: float) -> float | None:
        return float(np.percentile(a, q) * 1000.0) if len(a) else None

    wall = max(res.wall_s, 1e-9)
    return {
        "requests": int(len(res.sent)),
        "ok": int(ok.sum()),
        "errors": dict(res.errors),
        "offered_rps": len(res.sent) / offered_s if offered_s > 0 else None,
        "achieved_rps": float(ok.sum()) / wall,
        "wall_s": res.wall_s,
        "latency_ms": {"p50": pct(lat, 50), "p99": pct(lat, 99)},
        "ttft_ms": {"p50": pct(ttft, 50), "p99": pct(ttft, 99)},
        "prompt_tokens": int(res.prompt_tokens.sum()),
        "completion_tokens": int(res.completion_tokens.sum()),
        "completion_tokens_per_s": float(res.completion_tokens.sum()) / wall,
    }
