"""Overhead of the OpenAI-compatible gateway: the same requests sent to an OpenAI-compatible
upstream directly and through ``cpool serve``'s gateway (tenant token, rate-limit check,
routing, metering), on loopback.

Three processes: a minimal upstream (uvicorn; answers ``/v1/completions`` at once, streamed
or not, with usage), the gateway (the real server app on SQLite, its directory pointed at the
upstream) and this client (httpx, async). Reported per mode (non-streamed, streamed):

- added latency: p50 / p99 through the gateway minus direct, requests one at a time
  (``--requests`` of them, an aiohttp client);
- requests/s through the gateway (and direct) with ``--concurrency`` requests in flight, by
  wrk (``--seconds`` a run) when it is installed, else by the aiohttp client.
Direct and gateway runs alternate (twice each) so that drift on a busy machine hits both.

    python benchmarks/gateway_overhead.py [--requests 2000] [--concurrency 32] [--json F]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

TOKENS = 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- the upstream (a minimal OpenAI-compatible server) ---------------------------------
def upstream_app() -> FastAPI:
    app = FastAPI()
    usage = {"prompt_tokens": 8, "completion_tokens": TOKENS, "total_tokens": 8 + TOKENS}

    @app.get("/health")
    async def health() -> dict:
        return {"ok": True}

    @app.post("/v1/completions")
    async def completions(request: Request):
        doc = await request.json()
        if not doc.get("stream"):
            text = " ".join(f"t{i}" for i in range(TOKENS))
            return JSONResponse({"id": "x", "object": "text_completion", "model": doc["model"],
                                 "choices": [{"index": 0, "text": text}], "usage": usage})  # fmt: skip

        async def events():
            for i in range(TOKENS):
                chunk = {"id": "x", "choices": [{"index": 0, "text": f"t{i} "}]}
                yield f"data: {json.dumps(chunk)}\n\n"
            if (doc.get("stream_options") or {}).get("include_usage"):
                yield "data: " + json.dumps({"id": "x", "choices": [], "usage": usage}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def serve_upstream(port: int) -> None:
    import uvicorn

    uvicorn.run(upstream_app(), host="127.0.0.1", port=port, log_level="warning",
                access_log=False)  # fmt: skip


# ---- the gateway (the real server app, its directory on the upstream) -------------------
def serve_gateway(port: int, data_dir: str, upstream: str) -> None:
    import uvicorn

    from computepool.server.runtime import ServeSettings, build_app
    from computepool.server.service_directory import ServiceInfo, StaticDirectory

    app = build_app(ServeSettings(data_dir=Path(data_dir), pool="gavel-36x3",
                                  allow_unsandboxed=True))  # fmt: skip
    app.state.ctx.gateway.directory = StaticDirectory(
        [ServiceInfo("bench", "default", "qwen2.5-7b", ttft_slo_s=2.0, desired=1)],
        {"bench": [upstream]},
    )
    app.state.ctx.service.lease.acquire(wait=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                log_level="warning")  # fmt: skip


def tenant_token(data_dir: Path) -> str:
    from computepool.server import store
    from computepool.server.db import sessions
    from computepool.server.runtime import open_store, private_data_dir
    from computepool.server.schemas import TenantIn

    engine = open_store(private_data_dir(data_dir))
    with sessions(engine)() as s:
        t, _ = store.upsert_tenant(s, TenantIn(name="bench"), "bench")
        _, tok = store.create_token(s, "tenant", t, "bench")
        s.commit()
    engine.dispose()
    return tok


def wait_up(url: str, path: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if httpx.get(url + path, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


# ---- the client ---------------------------------------------------------------------------
def _body(stream: bool) -> dict:
    return {"model": "bench", "prompt": "hello " * 8, "max_tokens": TOKENS, "stream": stream}


async def one(
    session: aiohttp.ClientSession, url: str, stream: bool, headers: dict
) -> tuple[float, float]:
    """(seconds to the first body bytes, seconds to the last)."""
    t0 = time.perf_counter()
    first = None
    async with session.post(url + "/v1/completions", json=_body(stream), headers=headers) as r:
        async for _ in r.content.iter_any():
            if first is None:
                first = time.perf_counter() - t0
        assert r.status == 200, r.status
    return first or 0.0, time.perf_counter() - t0


async def sequential(url: str, n: int, stream: bool, headers: dict) -> np.ndarray:
    async with aiohttp.ClientSession() as c:
        for _ in range(20):  # warm-up: connections, caches
            await one(c, url, stream, headers)
        return np.array([await one(c, url, stream, headers) for _ in range(n)])  # (n, 2)


def wrk_rps(url: str, conc: int, seconds: int, stream: bool, headers: dict) -> float | None:
    """Requests a second by wrk (a C client: the client takes little of the CPU)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    lua = "\n".join(
        ['wrk.method = "POST"', f"wrk.body = '{json.dumps(_body(stream))}'",
         'wrk.headers["Content-Type"] = "application/json"']
        + [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    )  # fmt: skip
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
    try:
        out = subprocess.run(
            [wrk, "-t2", f"-c{conc}", f"-d{seconds}s", "-s", f.name, url + "/v1/completions"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(f.name)
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    return float(out.split("Requests/sec:")[1].split()[0])


async def client_rps(url: str, n: int, conc: int, stream: bool, headers: dict) -> float:
    """Requests a second by this (Python, aiohttp) client, when wrk is not installed."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc)) as c:
        sem = asyncio.Semaphore(conc)

        async def task() -> None:
            async with sem:
                await one(c, url, stream, headers)

        await asyncio.gather(*(task() for _ in range(min(n, 100))))  # warm-up
        t0 = time.perf_counter()
        await asyncio.gather(*(task() for _ in range(n)))
        return n / (time.perf_counter() - t0)


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rps(
    url: str, n: int, conc: int, seconds: int, stream: bool, headers: dict, pid: int
) -> tuple[float, float]:
    """(requests a second, CPU ms a request of the server process ``pid``)."""
    c0, t0 = cpu_s(pid), time.perf_counter()
    got = wrk_rps(url, conc, seconds, stream, headers)
    if got is None:
        got = asyncio.run(client_rps(url, n, conc, stream, headers))
    done = got * (time.perf_counter() - t0)  # (the warm-up of the Python client included)
    return got, (cpu_s(pid) - c0) * 1e3 / max(done, 1.0)


def pcts(prefix: str, d: np.ndarray, v: np.ndarray) -> dict:
    """p50 / p99 in ms: direct, through the gateway, and the difference."""

    def ms(a: np.ndarray, q: float) -> float:
        return float(np.percentile(a, q) * 1e3)

    return {
        f"{prefix}direct_ms": {"p50": ms(d, 50), "p99": ms(d, 99)},
        f"{prefix}gateway_ms": {"p50": ms(v, 50), "p99": ms(v, 99)},
        f"{prefix}added_ms": {"p50": ms(v, 50) - ms(d, 50), "p99": ms(v, 99) - ms(d, 99)},
    }


def measure(
    up: str, gw: str, headers: dict, n: int, conc: int, seconds: int, pids: tuple[int, int]
) -> dict:
    out = {}
    for stream in (False, True):
        mode = "streamed" if stream else "non-streamed"
        # interleave direct and gateway runs so drift on a busy machine hits both
        direct, via, d_rps, g_rps = [], [], [], []
        for _ in range(2):
            direct.append(asyncio.run(sequential(up, n // 2, stream, {})))
            via.append(asyncio.run(sequential(gw, n // 2, stream, headers)))
            d_rps.append(rps(up, n, conc, seconds, stream, {}, pids[0]))
            g_rps.append(rps(gw, n, conc, seconds, stream, headers, pids[1]))
        d, v = np.concatenate(direct), np.concatenate(via)
        out[mode] = {
            **pcts("", d[:, 1], v[:, 1]),
            **(pcts("first_byte_", d[:, 0], v[:, 0]) if stream else {}),
            "direct_rps": [r for r, _ in d_rps],
            "gateway_rps": [r for r, _ in g_rps],
            # CPU of the upstream per direct request; of the gateway process per request
            "upstream_cpu_ms_per_request": [c for _, c in d_rps],
            "gateway_cpu_ms_per_request": [c for _, c in g_rps],
        }  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seconds", type=int, default=10, help="Each wrk run (requests/s).")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--role", choices=["upstream", "gateway"], help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", help=argparse.SUPPRESS)
    ap.add_argument("--upstream", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.role == "upstream":
        return serve_upstream(a.port)
    if a.role == "gateway":
        return serve_gateway(a.port, a.data_dir, a.upstream)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        token = tenant_token(data)
        up_port, gw_port = free_port(), free_port()
        up, gw = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{gw_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CPOOL_")}
        me = [sys.executable, __file__]
        procs = [
            subprocess.Popen([*me, "--role", "upstream", "--port", str(up_port)], env=env),
            subprocess.Popen(
                [
                    *me,
                    "--role",
                    "gateway",
                    "--port",
                    str(gw_port),
                    "--data-dir",
                    str(data),
                    "--upstream",
                    up,
                ],
                env=env,
            ),  # fmt: skip
        ]
        try:
            wait_up(up, "/health")
            wait_up(gw, "/healthz")
            res = measure(up, gw, {"Authorization": f"Bearer {token}"}, a.requests,
                          a.concurrency, a.seconds, (procs[0].pid, procs[1].pid))  # fmt: skip
            # what the gateway metered: every request through it above (warm-ups included)
            time.sleep(1.5)
            usage = httpx.get(gw + "/v1/usage", headers={"Authorization": f"Bearer {token}"})
            res["metered"] = usage.json()["tokens"]
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=20)
    res["settings"] = {"requests": a.requests, "concurrency": a.concurrency,
                       "rps_client": "wrk" if shutil.which("wrk") else "aiohttp",
                       "cpus": os.cpu_count(), "tokens_per_answer": TOKENS}  # fmt: skip
    text = json.dumps(res, indent=2)
    print(text)
    if a.json:
        a.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
