"""Autoscaler reaction, LIVE on this machine: EMULATED replicas as local processes.

Starts the service's replicas (``examples/serving/emulated_replica.py``: token timing from the
performance model, no model, CPU only) under the ``Supervisor``, a stable endpoint in front of
them, and the ``LiveAutoscaler`` scraping their /metrics; replays the Azure conversation trace
(thinned, optionally compressed) against the endpoint on 127.0.0.1 with a x4 step over one
minute, and measures, client side, the time from the step to SLO recovered (the next 5 minutes
at >= 99 % attainment, as in serving_step.py). Everything it starts is stopped at the end.

    python benchmarks/serving_step_live.py --json step_live.json

The timings are real wall-clock measurements of emulated replicas on a shared 2-core VM:
replica start-up is the modelled weight-loading time, the token steps are slept, and CPU
contention between the processes adds noise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import uvicorn

from computepool.serving import autoscaler as asc
from computepool.serving.emulator import replica_timing
from computepool.serving.http import endpoint_app
from computepool.serving.live import LiveAutoscaler, timing_shape
from computepool.serving.loadgen import replay
from computepool.serving.models import ModelSpec, model_fields
from computepool.serving.perf import Mix, capacity_rps, prefill_flops
from computepool.serving.service import ServingConfig
from computepool.serving.streams import LoadStep, TrafficSpec, build_streams
from computepool.serving.supervisor import Supervisor, free_port

sys.path.insert(0, str(Path(__file__).parent))
from serving_step import recovery  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-7b")
    ap.add_argument("--accelerator", default="H20")
    ap.add_argument("--rate-scale", type=float, default=0.5)
    ap.add_argument("--time-scale", type=float, default=1.0)
    ap.add_argument("--at", type=float, default=180.0)
    ap.add_argument("--factor", type=float, default=4.0)
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument("--interval", type=float, default=30.0)
    ap.add_argument("--max-output", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    # a plain `kill` stops everything this script started too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    timing = replica_timing(args.model, args.accelerator)
    step = LoadStep(at_s=args.at, factor=args.factor, ramp_s=60.0)
    traffic = TrafficSpec(rate_scale=args.rate_scale, time_scale=args.time_scale,
                          duration_s=args.duration, step=step)  # fmt: skip
    stream = build_streams(traffic, ["chat"], ["conv"], [1.0])[0]
    m = ModelSpec(name=args.model, **model_fields(args.model))
    mix = Mix(
        float(prefill_flops(m, stream.prompt).mean()),
        float(stream.output.mean()),
        float((stream.prompt + stream.output / 2).mean()),
    )
    cfg = ServingConfig(interval_s=args.interval)
    cap = float(capacity_rps(timing_shape(timing), mix, 0.1, cfg.target_utilization)[0])
    base = float(np.sum(stream.t < args.at)) / args.at
    n0 = asc.replicas_for(base * 1.2, cap, 1, 16)
    print(f"{timing.label}: {cap:.2f} req/s per replica; base {base:.2f} req/s -> {n0} "
          f"replicas; {len(stream)} requests; replica start-up {timing.start_s:.0f} s", flush=True)  # fmt: skip

    logs = Path(tempfile.mkdtemp(prefix="cpool-step-live-"))
    script = Path(__file__).resolve().parent.parent / "examples/serving/emulated_replica.py"

    def command(port: int) -> list[str]:
        return [sys.executable, str(script), "--model", args.model,
                "--accelerator", args.accelerator, "--port", str(port)]  # fmt: skip

    sup = Supervisor(command, name="chat", log_dir=logs, startup_s=timing.start_s + 60)
    auto = LiveAutoscaler(sup, timing, mix, cfg=cfg, max_replicas=16, initial_need=base * 1.2)
    snapshot: list[str] = []
    stop = threading.Event()
    try:
        sup.scale_to(n0)
        if not sup.wait_healthy(timeout_s=timing.start_s + 60):
            raise SystemExit(f"replicas did not become healthy; logs in {logs}")
        snapshot[:] = sup.endpoints()
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(endpoint_app(lambda: list(snapshot), "chat"),
                                               host="127.0.0.1", port=port, log_level="warning"))  # fmt: skip
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        t_start = time.monotonic()
        timeline: list[tuple[float, int, int]] = []

        def control() -> None:
            auto.tick(0.0)  # baseline sample
            next_tick = t_start + args.interval
            next_obs = t_start + 5.0
            while not stop.is_set():
                sup.check()
                snapshot[:] = sup.endpoints()
                now = time.monotonic()
                if now >= next_tick:
                    auto.tick(now - t_start)
                    next_tick += args.interval
                elif now >= next_obs:
                    auto.observe(now - t_start)
                    next_obs = now + 5.0
                timeline.append((now - t_start, len(sup.replicas), len(snapshot)))
                time.sleep(1.0)

        th = threading.Thread(target=control, daemon=True)
        th.start()
        res = asyncio.run(replay(f"http://127.0.0.1:{port}", stream, args.max_output))
        stop.set()
        th.join(timeout=5)
        server.should_exit = True
    finally:
        stop.set()
        sup.stop()
    ok = res.attainment(2.0, 0.1)
    rec, missed = recovery(res.sent, ok, args.at)
    tl = np.array(timeline)
    out = {
        "model": args.model,
        "shape": timing.label,
        "requests": int(len(ok)),
        "slo_attainment": float(ok.mean()),
        "recovery_s": rec,
        "missed_after_step": missed,
        "replicas_before": int(tl[tl[:, 0] < args.at, 2].max()),
        "replicas_after": int(tl[tl[:, 0] > args.at + 300, 2].max()),
        "restarts": sum(r.restarts for r in sup.replicas),
        "decisions": auto.decisions,
        "ttft_p99_s": float(np.percentile(res.ttft, 99)),
        "logs": str(logs),
    }
    before = res.sent < args.at
    out["slo_attainment_before_step"] = float(ok[before].mean())
    print(json.dumps({k: v for k, v in out.items() if k != "decisions"}, indent=2))
    out["per_request"] = {"sent": res.sent.tolist(), "ttft": res.ttft.tolist(),
                          "tbt": res.tbt.tolist()}  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
