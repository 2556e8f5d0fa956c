"""Live multiplexing and scale to zero: cold-start latency through the real gateway.

Runs the real server (``build_app``: SQLite store, local backend, the gateway, the live
serving controller) under uvicorn on 127.0.0.1, with a services file of

* ``sleepy``: one model that scales to zero (``scale_to_zero: {idle_s}``);
* ``alpha``, ``beta``, ``gamma``: three cold models the simulator's mux plan groups on one
  V100 (two fit its memory, the third evicts the least recently used idle one),

and measures, ``--rounds`` times each:

1. **scale-to-zero cold start**: wait until ``sleepy`` is at zero replicas, send one chat
   completion; the server's cold start (first held request -> first ready replica: process
   start + engine readiness) and the client's latency of that request, then a warm request;
2. **eviction swap**: ask ``alpha``, then ``beta``, then ``gamma`` (which evicts ``alpha``),
   then ``alpha`` again (evicting ``beta``): cold start of each woken member.

Engines: the EMULATED replica (its readiness includes the modelled weight load from host
memory over the card's host link, ServerlessLLM's path: ~0.3 s for these models), and
llama-cpp-python with a tiny random GGUF when ``import llama_cpp`` works (else said and
skipped).

    python benchmarks/serving_mux_live.py [--rounds 5] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import socket
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import uvicorn

EMULATED = """
traffic: {rate_scale: 0.05, duration_hours: 0.25, seed: 0}
serving: {interval_s: 2, packing: false, multiplex: true, keep_alive_s: 600, hot_fraction: 0.005}
services:
  - {name: sleepy, model: qwen2.5-0.5b, accelerators: [P100], max_replicas: 1,
     scale_to_zero: {idle_s: IDLE, queue: 16, max_wait_s: 120}}
  - {name: alpha, model: qwen2.5-3b, accelerators: [V100], share: 0.001}
  - {name: beta, model: qwen1.5-1.8b, accelerators: [V100], share: 0.001}
  - {name: gamma, model: llama-3.2-1b, accelerators: [V100], share: 0.001}
"""
LLAMA = """
traffic: {rate_scale: 0.05, duration_hours: 0.25, seed: 0}
serving: {interval_s: 2, packing: false}
services:
  - {name: sleepy, model: qwen2.5-0.5b, accelerators: [P100], max_replicas: 1,
     engine: llama-cpp-python, model_path: GGUF,
     scale_to_zero: {idle_s: IDLE, queue: 16, max_wait_s: 120}}
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """The real app under uvicorn in a thread, with an admin and a tenant token."""

    def __init__(self, tmp: Path, services: Path) -> None:
        from computepool.server import store
        from computepool.server.db import sessions
        from computepool.server.runtime import ServeSettings, build_app, open_store

        data, url = tmp / "data", f"sqlite:///{tmp / 'c.db'}"
        engine = open_store(data, url)
        with sessions(engine)() as s:
            _, admin = store.create_token(s, "admin", None, "bench")
            s.commit()
        engine.dispose()
        settings = ServeSettings(data_dir=data, db_url=url, pool="gavel-36x3", round_seconds=0.2,
                                 stop_jobs_on_exit=True, allow_unsandboxed=True,
                                 services=str(services))  # fmt: skip
        self.port = _port()
        cfg = uvicorn.Config(build_app(settings), host="127.0.0.1", port=self.port,
                             log_level="warning")  # fmt: skip
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=180.0)
        self.admin = {"Authorization": f"Bearer {admin}"}
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                if self.http.get("/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        self.http.post("/v1/tenants", json={"name": "bench"}, headers=self.admin)
        tok = self.http.post("/v1/tenants/bench/tokens", headers=self.admin).json()["token"]
        self.who = {"Authorization": f"Bearer {tok}"}

    def status(self) -> dict[str, dict]:
        return {s["name"]: s for s in self.http.get("/services", headers=self.admin).json()}

    def wait(self, cond, timeout: float = 120.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond(self.status()):
                return
            time.sleep(0.1)
        raise TimeoutError("the services did not reach the state waited for")

    def ask(self, model: str) -> tuple[int, float]:
        body = {"model": model, "messages": [{"role": "user", "content": "hello pool"}],
                "max_tokens": 4}  # fmt: skip
        t0 = time.monotonic()
        r = self.http.post("/v1/chat/completions", headers=self.who, json=body)
        return r.status_code, time.monotonic() - t0

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def _pct(xs: list[float]) -> dict:
    a = np.asarray(xs, dtype=float)
    if not len(a):
        return {}
    return {"n": len(a), "p50": float(np.median(a)), "min": float(a.min()), "max": float(a.max())}


def scale_to_zero(srv: Server, rounds: int) -> dict:
    cold, client, warm = [], [], []
    for _ in range(rounds):
        srv.wait(lambda st: st["sleepy"]["asleep"] and st["sleepy"]["replicas"] == 0)
        code, took = srv.ask("sleepy")
        assert code == 200, code
        cold.append(srv.status()["sleepy"]["cold_start_s_last"])
        client.append(took)
        code, took = srv.ask("sleepy")
        warm.append(took)
    return {"cold_start_s": _pct(cold), "client_first_request_s": _pct(client),
            "client_warm_request_s": _pct(warm)}  # fmt: skip


def eviction_swap(srv: Server, rounds: int) -> dict:
    srv.wait(lambda st: st["alpha"]["healthy"] == 1 and st["beta"]["healthy"] == 1)
    cold: list[float] = []
    order = ["alpha", "beta", "gamma", "alpha", "beta"]
    for _ in range(rounds):
        for name in order:
            before = srv.status()[name]["cold_starts"]
            code, _ = srv.ask(name)
            assert code == 200, (name, code)
            st = srv.status()[name]
            if st["cold_starts"] > before:
                cold.append(st["cold_start_s_last"])
    st = srv.status()
    devices = {json.dumps(st[n]["devices"]) for n in ("alpha", "beta", "gamma") if st[n]["devices"]}
    return {"cold_start_s": _pct(cold), "evictions": sum(st[n]["evictions"] for n in st),
            "device_slots_used": len(devices)}  # fmt: skip


def run(text: str, rounds: int, mux: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "services.yaml"
        gguf = Path(tmp) / "tiny.gguf"
        if "GGUF" in text:
            from computepool.serving.engines.tiny_gguf import write_tiny_llama

            write_tiny_llama(gguf)
        path.write_text(text.replace("IDLE", "2").replace("GGUF", str(gguf)))
        srv = Server(Path(tmp), path)
        try:
            out = {"scale_to_zero": scale_to_zero(srv, rounds)}
            if mux:
                out["eviction_swap"] = eviction_swap(srv, rounds)
            return out
        finally:
            srv.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    res = {"emulator": run(EMULATED, args.rounds, mux=True)}
    try:
        import llama_cpp  # noqa: F401

        res["llama-cpp-python"] = run(LLAMA, args.rounds, mux=False)
    except ImportError:
        res["llama-cpp-python"] = "not installed (pip install -e '.[engines]'): skipped"
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
