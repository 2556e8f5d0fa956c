"""Autoscaler reaction (simulated): a load step x4 within one minute -> time to SLO recovered.

One chat service (``--model``, default Qwen2.5-7B; the Azure conversation trace at
``--rate-scale``) on
``automotive-demo``; at ``--at`` seconds its rate rises linearly to 4x over 60 s. Two runs:
with the pool otherwise idle, and with the pool full of training backfill (the scale-up must
preempt spot jobs, which get ``grace_s`` to checkpoint). Recovery time: from the start of the
step until the requests of the following 5 minutes meet the SLOs at >= 99 % again.

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


def recovery(t, ok, at: float, hold: float = 300.0, step: float = 10.0) -> tuple[float, int]:
    """(seconds from ``at`` until the SLO holds again, requests missed after ``at``).

    Recovered at the first time T (on a ``step`` grid) from which the requests of the next
    ``hold`` seconds meet the SLOs at >= 99 % (a p99 SLO over 5 minutes met again).
    """
    after = t >= at
    missed = int((~ok[after]).sum())
    for T in np.arange(at, t.max() - hold + step, step):
        w = (t >= T) & (t < T + hold)
        if w.any() and ok[w].mean() >= 0.99:
            return float(T - at), missed
    return float("inf"), missed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", default="automotive-demo")
    ap.add_argument("--model", default="qwen2.5-7b")
    ap.add_argument("--accelerators", default="H20,H800,Ascend910B")
    ap.add_argument("--rate-scale", type=float, default=2.0)
    ap.add_argument("--at", type=float, default=1800.0)
    ap.add_argument("--factor", type=float, default=4.0)
    ap.add_argument("--duration", type=float, default=None, help="default: --at + 1800")
    ap.add_argument("--training", default="examples/serving/llm-mix.yaml")
    ap.add_argument("--json", default=None)
    ap.add_argument("--plot", default=None)
    args = ap.parse_args()
    pool = load_pool(args.pool)
    tp = load_throughputs("gavel", accelerators=pool.accelerators)
    step = LoadStep(at_s=args.at, factor=args.factor, ramp_s=60.0)
    duration = args.duration or args.at + 1800.0
    traffic = TrafficSpec(rate_scale=args.rate_scale, duration_s=duration, step=step)
    svc = ServiceSpec(
        "chat",
        ModelSpec(name=args.model, **model_fields(args.model)),
        accelerators=tuple(args.accelerators.split(",")),
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
