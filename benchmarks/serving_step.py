"""Autoscaler reaction (simulated): a load step x4 within one minute -> time to SLO recovered.

One chat service (Qwen2.5-7B, the Azure conversation trace at ``--rate-scale``) on
``automotive-demo``; at ``--at`` seconds its rate rises linearly to 4x over 60 s. Two runs:
with the pool otherwise idle, and with the pool full of training backfill (the scale-up must
preempt spot jobs, which get ``grace_s`` to checkpoint). Recovery time: from the start of the
step to the end of the last 10-second window (by arrival) whose SLO attainment is below 99 %.

    python benchmarks/serving_step.py --json step.json --plot step.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from computepool.catalog.pools import load_pool
from computepool.catalog.throughputs import load_throughputs
from computepool.model.workload import Workload
from computepool.policies.registry import get_policy
from computepool.serving.models import ModelSpec, model_fields
from computepool.serving.replay import attainment
from computepool.serving.service import ServiceSpec, ServingConfig, ServingWorkload
from computepool.serving.streams import LoadStep, TrafficSpec, build_streams
from computepool.sim.run import SimConfig, simulate
from computepool.traces import load_workload


def recovery(t, ok, at: float, window: float = 10.0) -> tuple[float, int]:
    """(seconds from ``at`` to the end of the last window below 99 %, requests missed)."""
    after = t >= at
    k = ((t[after] - at) // window).astype(int)
    n = np.bincount(k)
    good = np.bincount(k, weights=ok[after].astype(float), minlength=len(n))
    bad = np.nonzero((n > 0) & (good < 0.99 * n))[0]
    rec = float((bad[-1] + 1) * window) if len(bad) else 0.0
    return rec, int((~ok[after]).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", default="automotive-demo")
    ap.add_argument("--rate-scale", type=float, default=2.0)
    ap.add_argument("--at", type=float, default=1800.0)
    ap.add_argument("--factor", type=float, default=4.0)
    ap.add_argument("--training", default="examples/serving/llm-mix.yaml")
    ap.add_argument("--json", default=None)
    ap.add_argument("--plot", default=None)
    args = ap.parse_args()
    pool = load_pool(args.pool)
    tp = load_throughputs("gavel", accelerators=pool.accelerators)
    step = LoadStep(at_s=args.at, factor=args.factor, ramp_s=60.0)
    traffic = TrafficSpec(rate_scale=args.rate_scale, duration_s=args.at + 1800.0, step=step)
    svc = ServiceSpec(
        "chat-7b",
        ModelSpec(name="qwen2.5-7b", **model_fields("qwen2.5-7b")),
        accelerators=("H20", "H800", "Ascend910B"),
        max_replicas=32,
        trace="conv",
        share=1.0,
    )
    streams = build_streams(traffic, [svc.name], ["conv"], [1.0])
    sw = ServingWorkload((svc,), tuple(streams), traffic, ServingConfig(), "step")
    empty = Workload(np.zeros(0), np.zeros(0), np.zeros(0), [])
    jobs = load_workload(args.training, throughputs=tp)
    out, curves = {}, {}
    for name, w in (("idle pool", empty), ("pool full of training backfill", jobs)):
        res = simulate(pool, w, tp, get_policy("las"), SimConfig(), services=sw)
        st = res.serving.states[0]
        rp = st.replay
        ok = attainment(rp.ttft, rp.tbt, svc.ttft_slo_s, svc.tbt_slo_s)
        rec, missed = recovery(rp.stream.t, ok, args.at)
        reps = np.array(res.serving.record.replicas)[:, 0]
        rt = np.array(res.serving.record.t)
        before = reps[(rt > args.at - 300) & (rt <= args.at)]
        after = reps[(rt > args.at + 300) & (rt < args.at + 900)]
        out[name] = {
            "recovery_s": rec,
            "missed_after_step": missed,
            "requests_after_step": int((rp.stream.t >= args.at).sum()),
            "replicas_before": int(before.max()) if len(before) else 0,
            "replicas_after": int(after.max()) if len(after) else 0,
            "preemptions_for_services": res.extra["serving"]["preemptions_for_services"],
            "slo_attainment": res.extra["services"][0]["slo_attainment"],
        }
        curves[name] = (rp.stream.t, rp.ttft, rt, reps)
        print(name, out[name], flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    if args.plot:
        _plot(curves, args.at, args.plot)


def _plot(curves, at: float, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(9, 4.8), sharex=True)
    for name, (t, ttft, rt, reps) in curves.items():
        k = (t // 10).astype(int)
        p99 = np.array([np.percentile(ttft[k == i], 99) if (k == i).any() else np.nan
                        for i in range(k.max() + 1)])  # fmt: skip
        x = (np.arange(len(p99)) * 10 - at) / 60
        axes[0].plot(x, np.minimum(p99, 10), label=name)
        axes[1].step((rt - at) / 60, reps, where="post", label=name)
    axes[0].axhline(2.0, color="grey", ls="--", lw=0.8)
    axes[0].set_ylabel("TTFT p99 per 10 s (s)")
    axes[1].set_ylabel("replicas")
    axes[1].set_xlabel("minutes after the step starts")
    axes[0].set_xlim(-5, 15)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
