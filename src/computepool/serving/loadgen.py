"""Load generator: replay a request stream (the Azure trace, compressed) against an endpoint.

Each request is sent at its (scaled) arrival time as an OpenAI ``POST {url}/v1/completions``
(the prompt as a list of that many token ids, ``max_tokens`` and vLLM's ``ignore_eos`` so the
output has the trace's length, ``stream: true``) and read as server-sent events; the client
measures the time to the first token chunk (TTFT) and the mean and largest gap between token
chunks (TBT). Only ``127.0.0.1`` URLs are accepted: this is a test tool for local replicas.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from urllib.parse import urlparse

import httpx
import numpy as np

from computepool.serving.streams import RequestStream


@dataclass
class Replayed:
    sent: np.ndarray  # seconds after the start
    ttft: np.ndarray  # inf when failed
    tbt: np.ndarray  # mean gap between tokens, inf when failed
    tbt_max: np.ndarray
    tokens: np.ndarray

    def attainment(self, ttft_slo: float, tbt_slo: float) -> np.ndarray:
        return (self.ttft <= ttft_slo) & (self.tbt <= tbt_slo)


def _local(url: str) -> str:
    host = urlparse(url).hostname
    if host not in ("127.0.0.1", "localhost"):
        raise ValueError(f"{url}: the load generator only targets 127.0.0.1")
    return url.rstrip("/")


def completion_body(prompt: int, out: int, model: str | None = None, text: bool = False) -> dict:
    """An OpenAI completion request of ``prompt`` tokens for ``out`` tokens: token ids, or
    with ``text`` that many words (for servers that take text only, e.g. llama-cpp-python)."""
    p: list[int] | str = " ".join(["the"] * prompt) if text else [0] * prompt
    body = {"prompt": p, "max_tokens": out, "ignore_eos": True, "stream": True}
    return body if model is None else {"model": model, **body}


def _is_token(line: str) -> bool:
    """Whether an SSE line is a chunk carrying generated text (not usage, not ``[DONE]``)."""
    if not line.startswith("data: {"):
        return False
    choices = json.loads(line[6:]).get("choices") or [{}]
    c = choices[0]
    return bool(c.get("text") or (c.get("delta") or {}).get("content"))


async def _one(client: httpx.AsyncClient, url: str, prompt: int, out: int, t0: float,
               model: str | None = None, text: bool = False):  # fmt: skip
    sent = time.perf_counter()
    first = last = None
    n, gap_max = 0, 0.0
    try:
        async with client.stream(
            "POST", f"{url}/v1/completions", json=completion_body(prompt, out, model, text)
        ) as r:
            if r.status_code != 200:
                return sent - t0, np.inf, np.inf, np.inf, 0
            async for line in r.aiter_lines():
                if not _is_token(line):
                    continue
                now = time.perf_counter()
                if first is None:
                    first = now
                elif last is not None:
                    gap_max = max(gap_max, now - last)
                last = now
                n += 1
    except httpx.HTTPError:
        return sent - t0, np.inf, np.inf, np.inf, n
    if first is None:
        return sent - t0, np.inf, np.inf, np.inf, 0
    tbt = (last - first) / (n - 1) if n > 1 else 0.0
    return sent - t0, first - sent, tbt, gap_max, n


async def replay(
    url: str,
    stream: RequestStream,
    max_output: int | None = None,
    timeout_s: float = 120.0,
    model: str | None = None,
    text_prompts: bool = False,
) -> Replayed:
    """Send every request of ``stream`` at its time (seconds from now); wait for all."""
    url = _local(url)
    limits = httpx.Limits(max_connections=2048, max_keepalive_connections=256)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        t0 = time.perf_counter()
        tasks = []
        for t, p, o in zip(stream.t, stream.prompt, stream.output, strict=True):
            delay = t0 + float(t) - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            out = int(o) if max_output is None else min(int(o), max_output)
            tasks.append(
                asyncio.create_task(_one(client, url, int(p), max(out, 1), t0, model, text_prompts))
            )
        rows = await asyncio.gather(*tasks)
    arr = np.array(rows, dtype=float).reshape(-1, 5)
    return Replayed(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4])
