"""A real inference engine on the live pool, on this CPU: time to ready, tokens/s, and the live
autoscaler's reaction to a x4 step, read from the engine's own metrics.

Writes a tiny random llama model in GGUF (``engines/tiny_gguf.py``), runs one service of it on
the live pool's serving hook (``LiveServingController`` in a ``Scheduler`` stepped every
second, replicas bound to device slots), then:

1. time to ready: from the round that starts the replica to its readiness probe answering;
2. tokens/s: ``--requests`` completions one after another (``--prompt`` words,
   ``--output`` tokens, greedy), completion tokens / wall time, and the same with 4 in flight;
3. a x4 step: the load generator sends ``--rate`` requests/s for ``--at`` seconds, then 4x
   for ``--after`` seconds; the autoscaler (interval ``--interval`` s) reads the replicas'
   metrics; reported: when it asked for more replicas, when the new one was ready, TTFT
   percentiles before and after.

    python benchmarks/engine_cpu.py --engine llama-cpp-python --json engine_cpu.json
    python benchmarks/engine_cpu.py --engine emulator   # the same harness, emulated replicas
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import uvicorn

from computepool.backends.slots import SlotAssigner
from computepool.catalog.accelerators import load_accelerators
from computepool.model.pool import Node, Pool
from computepool.model.region import Region
from computepool.model.throughput import Throughputs
from computepool.model.workload import Workload
from computepool.policies import get_policy
from computepool.scheduler.loop import Scheduler, SchedulerConfig
from computepool.serving.engines.launch import EngineChoice
from computepool.serving.http import endpoint_app
from computepool.serving.live_pool import LiveServingController
from computepool.serving.loadgen import replay
from computepool.serving.models import ModelSpec, model_fields
from computepool.serving.perf import Profile
from computepool.serving.service import ServiceSpec, ServingConfig, ServingWorkload
from computepool.serving.streams import RequestStream, TrafficSpec
from computepool.serving.supervisor import free_port
from computepool.sim.cluster import SimClock, WorkloadSource


def _pool() -> Pool:
    acc = load_accelerators()["H800"]
    return Pool("cpu-bench", {"H800": acc}, {"local": Region("local", "XX", 0.1, 1.2, 0.0)},
                (Node("local-0", "local", "H800", 4),))  # fmt: skip


def _stepper(sched: Scheduler, stop: threading.Event) -> threading.Thread:
    def run() -> None:
        t = 0.0
        while not stop.is_set():
            sched.clock.sleep_until(t)
            sched.step()
            t += 1.0
            stop.wait(1.0)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def _service(args, path: str, profile: Profile | None = None, engine: str = "") -> ServiceSpec:
    # CPU-scale SLOs: a 2 s TTFT and a 0.5 s gap between tokens
    return ServiceSpec("tiny", ModelSpec(name="qwen2.5-1.5b", **model_fields("qwen2.5-1.5b")),
                       ttft_slo_s=2.0, tbt_slo_s=0.5, min_replicas=1, max_replicas=3,
                       engine=EngineChoice(engine or args.engine, path),
                       profiles=() if profile is None else (profile,))  # fmt: skip


def _step_stream(args) -> RequestStream:
    rng = np.random.default_rng(0)
    n1 = rng.poisson(args.rate * args.at)
    n2 = rng.poisson(4 * args.rate * args.after)
    t = np.concatenate([np.sort(rng.uniform(0, args.at, n1)),
                        args.at + np.sort(rng.uniform(0, args.after, n2))])  # fmt: skip
    return RequestStream(t, np.full(len(t), float(args.prompt)),
                         np.full(len(t), float(args.step_output)))  # fmt: skip


def _controller(pool: Pool, svc: ServiceSpec, args, tmp: Path, stream=None):
    from tests.fakes import RecordingCluster

    # the autoscaler's windows scaled to the decision interval (a short run)
    iv = args.interval
    cfg = ServingConfig(packing=False, interval_s=iv, window_s=3 * iv, burst_window_s=iv,
                        peak_window_s=6 * iv, forecast_s=2 * iv, drain_s=6 * iv,
                        scale_down_delay_s=600.0)  # fmt: skip
    stream = stream or _step_stream(args)  # the mix the replica's capacity is computed at
    # the previous period (shape and mix are chosen from it) looked like this one
    sw = ServingWorkload((svc,), (stream,), TrafficSpec(duration_s=600), cfg, past=(stream,))
    jobs = Workload.from_jobs([])
    placer = SlotAssigner(pool, lambda j: (1, 1))
    ctl = LiveServingController(pool, sw, log_dir=tmp, start_delay_s=0.0)
    ctl.bind_placer(placer)
    sched = Scheduler(pool, jobs, Throughputs(pool.accelerators), get_policy("fifo"),
                      RecordingCluster(), SimClock(0.0), WorkloadSource(jobs),
                      SchedulerConfig(round_seconds=1.0), serving=ctl, placer=placer)  # fmt: skip
    return ctl, sched


def _step(args, pool: Pool, path: str, prof: Profile, engine: str, tmp: Path) -> dict:
    stop = threading.Event()
    ctl, sched = _controller(pool, _service(args, path, prof, engine), args, tmp)
    st = ctl.states[0]
    try:
        sched.step()
        if not st.supervisor.wait_healthy(timeout_s=300):
            raise SystemExit(f"replica not ready; logs in {tmp}")
        # the x4 step, against the service's replicas (least loaded healthy one per request)
        stream = _step_stream(args)
        t = stream.t
        ctl._next = time.monotonic()  # decide from now on, every interval
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(endpoint_app(st.supervisor.endpoints, "tiny"),
                                               host="127.0.0.1", port=port, log_level="error"))  # fmt: skip
        th = threading.Thread(target=server.run, daemon=True)
        th.start()
        while not server.started:
            time.sleep(0.02)
        stepper = _stepper(sched, stop)
        start = time.monotonic()
        timeline: list[tuple[float, int, int]] = []

        def watch() -> None:
            while not stop.is_set():
                timeline.append((round(time.monotonic() - start, 1), len(st.supervisor.replicas),
                                 len(st.supervisor.endpoints())))  # fmt: skip
                stop.wait(0.5)

        w = threading.Thread(target=watch, daemon=True)
        w.start()
        res = asyncio.run(replay(f"http://127.0.0.1:{port}", stream, model="tiny",
                                 text_prompts=True, timeout_s=600))  # fmt: skip
        stop.set()
        stepper.join(timeout=10)
        server.should_exit = True
        th.join(timeout=5)
        before = res.sent < args.at
        n_at = next((n for t, n, _ in timeline if t >= args.at), 1)  # replicas at the step
        asked = next((t for t, n, _ in timeline if t >= args.at and n > n_at), None)
        ready = next((t for t, _, h in timeline if t >= args.at and h > n_at), None)
        after = [n for t, n, _ in timeline if t >= args.at]
        return {
            "rate_before": args.rate, "rate_after": 4 * args.rate, "at_s": args.at,
            "requests": len(t), "failed": int((~np.isfinite(res.ttft)).sum()),
            "replicas_before": n_at, "replicas_max": max(after),
            "slo_attained_before": round(float(res.attainment(2.0, 0.5)[before].mean()), 4),
            "slo_attained_after": round(float(res.attainment(2.0, 0.5)[~before].mean()), 4),
            "more_replicas_asked_s_after_step": None if asked is None else round(asked - args.at, 1),
            "more_replicas_ready_s_after_step": None if ready is None else round(ready - args.at, 1),
            "ttft_p50_before_s": round(float(np.median(res.ttft[before])), 3),
            "ttft_p50_after_s": round(float(np.median(res.ttft[~before])), 3),
            "ttft_p99_after_s": round(float(np.percentile(res.ttft[~before], 99)), 3),
            "decisions": [(round(d[0], 1), d[1], round(d[2], 3)) for d in st.autoscaler.decisions],
        }  # fmt: skip
    finally:
        stop.set()
        ctl.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", default="llama-cpp-python")
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--output", type=int, default=64)
    ap.add_argument("--rate", type=float, default=0.5)
    ap.add_argument("--at", type=float, default=40.0)
    ap.add_argument("--after", type=float, default=60.0)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--layers", type=int, default=2, help="of the tiny model")
    ap.add_argument("--width", type=int, default=64, help="of the tiny model")
    ap.add_argument("--step-output", type=int, default=16, help="tokens per step request")
    ap.add_argument(
        "--compare-emulator",
        action="store_true",
        help="run the step again on emulated replicas at the measured profile",
    )
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="cpool-engine-"))
    path = ""
    if args.engine != "emulator":
        from computepool.serving.engines.tiny_gguf import write_tiny_llama

        path = str(write_tiny_llama(tmp / "tiny.gguf", layers=args.layers, width=args.width,
                                    ff=2 * args.width))  # fmt: skip
    pool = _pool()
    out: dict = {"engine": args.engine, "args": vars(args)}
    # 1. time to ready and tokens/s, on the performance model's numbers
    ctl, sched = _controller(pool, _service(args, path), args, tmp)
    st = ctl.states[0]
    try:
        t0 = time.monotonic()
        sched.step()
        if not st.supervisor.wait_healthy(timeout_s=300):
            raise SystemExit(f"replica not ready; logs in {tmp}")
        out["ready_s"] = round(time.monotonic() - t0, 2)
        url = st.supervisor.replicas[0].url
        text = " ".join(["the"] * args.prompt)
        with httpx.Client(timeout=300) as c:
            body = {"model": "tiny", "prompt": text, "max_tokens": args.output, "temperature": 0}
            c.post(f"{url}/v1/completions", json={**body, "max_tokens": 2})  # warm
            t1 = time.monotonic()
            toks = sum(c.post(f"{url}/v1/completions", json=body).json()["usage"]
                       ["completion_tokens"] for _ in range(args.requests))  # fmt: skip
            tps = toks / (time.monotonic() - t1)
            long = {**body, "prompt": " ".join(["the"] * 400), "max_tokens": 1}
            t1 = time.monotonic()
            ptoks = c.post(f"{url}/v1/completions", json=long).json()["usage"]["prompt_tokens"]
            prefill = ptoks / (time.monotonic() - t1)
        out["tokens_per_s_sequential"] = round(tps, 1)
        out["prefill_tokens_per_s"] = round(prefill, 1)
        s4 = RequestStream(np.zeros(4), np.full(4, float(args.prompt)), np.full(4, args.output))
        t1 = time.monotonic()
        res = asyncio.run(replay(url, s4, model="tiny", text_prompts=True, timeout_s=600))
        out["tokens_per_s_4_in_flight_streamed"] = round(
            float(res.tokens.sum()) / (time.monotonic() - t1), 1
        )
    finally:
        ctl.stop()
    # 2. the x4 step, the service's profile measured above (one sequence at a time: each
    # running sequence costs a whole decode step)
    prof = Profile("H800", 1, prefill, 1.0 / tps, 1.0 / tps)
    out["profile"] = {"prefill_tokens_per_s": round(prefill, 1), "decode_step_s": round(1 / tps, 4)}
    out["step"] = _step(args, pool, path, prof, args.engine, tmp)
    if args.compare_emulator:  # the same step on emulated replicas slept at the same profile
        out["step_emulator"] = _step(args, pool, "", prof, "emulator", tmp)
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
