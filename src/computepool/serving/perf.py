"""Performance model of an LLM replica on a flavor: a roofline model, documented, overridable.

A *replica shape* is (flavor, tensor-parallel degree ``tp``, device fraction ``frac``): ``tp``
whole devices of one node, or (``tp = 1``) a ``frac`` slice of one device shared with other
models (packing). A slice gets ``frac`` of the device's memory, FLOPs and bandwidth (a hard
partition, like MIG or HAMi core/memory limits; real time-sharing is work-conserving, so this
is pessimistic for packed replicas).

Per shape (``docs/serving.md`` has the derivation):

* prefill: a prompt of P tokens costs ``2 N P + 2 L d P^2`` FLOPs (dense GEMMs + causal
  attention) at ``F = tp * frac * peak_bf16 * mfu_prefill * stack_efficiency * tp_eff``;
* decode: one step for a batch of B sequences with mean resident context ``ctx`` takes
  ``tau(B) = a + B * (ctx * kvr + c)`` with ``a = W / BWeff + overhead (+ all-reduces)``
  (weights read once per step), ``kvr = kv_bytes_per_token / BWeff`` (KV read) and
  ``c = 2 N / Fdecode`` (decode FLOPs; memory and compute time are *added*, not overlapped,
  which is pessimistic near the ridge point);
* continuous batching with chunked prefill (Sarathi-Serve): the engine sizes prefill chunks so
  that every step fits the TBT budget ``B = tbt_budget * TBT SLO``. At decode token rate ``x``
  per replica, ``rho = x * (ctx * kvr + c)``, the step is ``tau = a / (1 - rho)`` (Little's law)
  and prefill gets the remaining ``1 - tau / B`` of each step.

Measured profiles (``Profile``) replace the derived prefill FLOP/s, ``a`` and per-sequence
slope for a (accelerator, tp) pair.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from computepool.model.pool import Pool
from computepool.serving.models import ModelSpec


@dataclass(frozen=True)
class PerfAssumptions:
    """Efficiencies and fixed costs; defaults are typical of vLLM/SGLang-class engines."""

    #: Fraction of dense BF16 peak reached by prefill GEMMs (CUDA; other stacks scale by
    #: the catalog's ``stack_efficiency``).
    mfu_prefill: float = 0.5
    #: Same for the decode GEMMs (small M, lower).
    mfu_decode: float = 0.35
    #: Fraction of peak HBM bandwidth a decode step streams.
    bw_efficiency: float = 0.8
    #: Fixed cost of one engine step (scheduling, kernel launches, sampling), seconds.
    step_overhead_s: float = 0.004
    #: Compute and bandwidth kept per replica when tp > 1 (collectives, imbalance).
    tp_efficiency: float = 0.9
    #: Latency of one all-reduce; two per layer per step when tp > 1.
    allreduce_s: float = 10e-6
    #: Share of device memory for weights + KV cache (the rest: activations, runtime).
    memory_usable: float = 0.9
    #: Steps are sized to this fraction of the TBT SLO (the engine's chunk budget).
    tbt_budget: float = 0.9
    #: KV room (tokens) a replica must have besides its weights to be worth starting.
    min_kv_tokens: int = 16384
    #: Weight loading bandwidth per device when a replica starts (host cache / NVMe), GB/s.
    load_gbs: float = 4.0
    #: Fixed replica start-up time (process, runtime, graph capture), seconds.
    start_s: float = 20.0
    #: Multiplexed models (``serving.multiplex``): share of the host link's bandwidth a
    #: weight copy from pinned host memory reaches (ServerlessLLM-style loading).
    h2d_efficiency: float = 0.8
    #: Cold models load from host memory (1: every model cached in the node's DRAM) or,
    #: when 0, from the node's local storage at ``storage_gbs``.
    host_cached: float = 1.0
    #: Node-local storage read bandwidth for weights not in host memory, GB/s (one NVMe).
    storage_gbs: float = 6.0
    #: Fixed cost of switching a running engine to another model (no process start: the
    #: engine, its CUDA context and graphs are reused, as in Aegaeon), seconds.
    switch_s: float = 0.2
    #: ``serving.residency: swap``: longest decode turn, seconds; each decoding model of an
    #: instance gets one slot per turn (switch in, then turn / TBT budget tokens), so the
    #: tokens of a model arrive in bursts up to this far apart (TBT holds on average).
    swap_turn_s: float = 4.0
    #: Prefill always keeps this share of a step even when decode overruns the budget.
    prefill_floor: float = 0.05
    tp_sizes: tuple[int, ...] = (1, 2, 4, 8)
    #: Device fractions a packed (tp = 1) replica may take; powers of two pack without waste.
    fractions: tuple[float, ...] = (0.125, 0.25, 0.5)


@dataclass(frozen=True)
class Profile:
    """Measured numbers for one model on (accelerator, tp) at a whole-device replica."""

    accelerator: str
    tp: int
    prefill_tokens_per_s: float
    decode_step_s: float
    decode_per_seq_s: float


@dataclass(frozen=True)
class ShapeTable:
    """Replica shapes for one model, as arrays (one entry per shape)."""

    flavor: np.ndarray  # int: pool flavor index
    tp: np.ndarray  # int
    frac: np.ndarray  # float: device share (1.0 for whole devices)
    devices: np.ndarray  # float: accelerators held = tp * frac
    price_h: np.ndarray  # USD per replica-hour
    flops: np.ndarray  # prefill FLOP/s of the replica
    a: np.ndarray  # s: decode step at batch 0
    kvr: np.ndarray  # s per (sequence x resident token) per step
    c: np.ndarray  # s per sequence per step (decode FLOPs)
    kv_cap: np.ndarray  # tokens of KV cache
    start_s: np.ndarray  # s from decision to ready (without any grace period)
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.flavor)

    def take(self, idx: np.ndarray) -> ShapeTable:
        return ShapeTable(
            **{
                k: getattr(self, k)[idx]
                for k in (
                    "flavor",
                    "tp",
                    "frac",
                    "devices",
                    "price_h",
                    "flops",
                    "a",
                    "kvr",
                    "c",
                    "kv_cap",
                    "start_s",
                )
            },
            names=tuple(self.names[i] for i in np.asarray(idx, dtype=np.int64)),
        )


@dataclass(frozen=True)
class Mix:
    """Request mix a service sees: means over a window (per request)."""

    prefill_flops: float  # mean prefill FLOPs
    output_tokens: float  # mean generated tokens
    context_tokens: float  # mean resident tokens while decoding (prompt + output / 2)


def prefill_flops(model: ModelSpec, prompt_tokens: np.ndarray) -> np.ndarray:
    p = np.asarray(prompt_tokens, dtype=np.float64)
    return 2.0 * model.params * p + 2.0 * model.layers * model.attn_dim * p * p


def max_tp_per_flavor(pool: Pool) -> np.ndarray:
    """Largest node (accelerators per host) of each flavor: a TP group stays inside one node."""
    out = np.zeros(len(pool.flavors), dtype=np.int64)
    np.maximum.at(out, pool.node_flavor, pool.node_count)
    return out


def build_shapes(
    model: ModelSpec,
    pool: Pool,
    accelerators: Sequence[str] = (),
    perf: PerfAssumptions | None = None,
    packing: bool = True,
    profiles: Mapping[tuple[str, int], Profile] | None = None,
    regions: Sequence[str] = (),
) -> ShapeTable:
    """Every shape of ``model`` whose weights (plus ``min_kv_tokens`` of KV) fit, on the
    flavors of ``pool`` whose accelerator is in ``accelerators`` (empty: any)."""
    perf = perf or PerfAssumptions()
    profiles = profiles or {}
    max_tp = max_tp_per_flavor(pool)
    rows: dict[str, list[float]] = {k: [] for k in ShapeTable.__dataclass_fields__}
    names: list[str] = []
    kvb = model.kv_bytes_per_token
    for f, (flv, acc) in enumerate(zip(pool.flavors, pool.flavor_accelerators, strict=True)):
        if accelerators and acc.name not in accelerators:
            continue
        if regions and flv.region not in regions:
            continue
        price = float(pool.flavor_price[f])
        options = [(tp, 1.0) for tp in perf.tp_sizes if tp <= max_tp[f]]
        if packing:
            options = [(1, fr) for fr in perf.fractions] + options
        for tp, fr in options:
            share = tp * fr
            eff = perf.tp_efficiency if tp > 1 else 1.0
            mem = share * acc.memory_gib * 1e9 * perf.memory_usable
            kv_cap = (mem - model.weight_bytes) / kvb
            if kv_cap < perf.min_kv_tokens:
                continue
            bw = share * acc.memory_bw_gbs * 1e9 * perf.bw_efficiency * eff
            peak = share * acc.bf16_tflops * 1e12 * acc.stack_efficiency * eff
            flops = peak * perf.mfu_prefill
            a = model.weight_bytes / bw + perf.step_overhead_s
            if tp > 1:
                a += 2 * model.layers * perf.allreduce_s
            kvr = kvb / bw
            c = 2.0 * model.params / (peak * perf.mfu_decode)
            prof = profiles.get((acc.name, tp))
            if prof is not None:
                flops = prof.prefill_tokens_per_s * 2.0 * model.params * fr
                a = prof.decode_step_s / fr
                c, kvr = prof.decode_per_seq_s / fr, 0.0
            load = model.weight_bytes / (tp * perf.load_gbs * 1e9)
            for k, v in (
                ("flavor", f),
                ("tp", tp),
                ("frac", fr),
                ("devices", share),
                ("price_h", share * price),
                ("flops", flops),
                ("a", a),
                ("kvr", kvr),
                ("c", c),
                ("kv_cap", kv_cap),
                ("start_s", perf.start_s + load),
            ):
                rows[k].append(v)
            label = f"{flv.name} x{tp}" if fr == 1.0 else f"{flv.name} 1/{round(1 / fr)}"
            names.append(label)
    rows.pop("names")
    arr = {k: np.asarray(v, dtype=np.float64) for k, v in rows.items()}
    arr["flavor"] = arr["flavor"].astype(np.int64)
    arr["tp"] = arr["tp"].astype(np.int64)
    return ShapeTable(**arr, names=tuple(names))


def idle_ttft(shapes: ShapeTable, flops: float) -> np.ndarray:
    """Time to first token of a prompt of ``flops`` on an idle replica of each shape."""
    return flops / np.maximum(shapes.flops, 1e-9) + shapes.a


def step_time(shapes: ShapeTable, rho: np.ndarray | float) -> np.ndarray:
    """Decode step time at decode utilisation ``rho`` (inf at or beyond 1)."""
    rho = np.asarray(rho, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(rho < 1.0, shapes.a / np.maximum(1.0 - rho, 1e-12), np.inf)


def per_seq_cost(shapes: ShapeTable, context_tokens: float | np.ndarray) -> np.ndarray:
    """Seconds of step time each decoding sequence adds (``ctx * kvr + c``)."""
    return context_tokens * shapes.kvr + shapes.c


def capacity_rps(
    shapes: ShapeTable,
    mix: Mix,
    tbt_slo: float,
    target_util: float,
    perf: PerfAssumptions | None = None,
) -> np.ndarray:
    """Largest request rate one replica of each shape carries with the TBT budget kept, the
    prefill share at most ``target_util`` busy, and the batch inside the KV cache.

    With ``y`` req/s, ``O`` output tokens, ``k = ctx * kvr + c``, mean prefill FLOPs ``P``,
    budget ``B`` and target ``u``: the prefill condition ``y P <= u F (1 - a / (B (1 - y O k)))``
    is the quadratic ``P O k y^2 - (u F O k + P) y + u F (1 - a/B) >= 0`` (its smaller root is
    the bound); the KV condition ``y O tau <= kv_cap / ctx`` gives ``y <= M / (O (a + M k))``.
    """
    return capacity_arrays(
        shapes, mix.prefill_flops, mix.output_tokens, mix.context_tokens, tbt_slo, target_util,
        perf or PerfAssumptions(),
    )  # fmt: skip


def capacity_arrays(
    shapes: ShapeTable,
    prefill: np.ndarray | float,
    output: np.ndarray | float,
    context: np.ndarray | float,
    tbt_slo: np.ndarray | float,
    target_util: float,
    perf: PerfAssumptions,
) -> np.ndarray:
    """``capacity_rps`` with the mix (and TBT SLO) given per shape (arrays) or for all."""
    budget = perf.tbt_budget * np.asarray(tbt_slo, dtype=np.float64)
    k = per_seq_cost(shapes, context)
    o = np.maximum(output, 1e-9)
    p = np.maximum(prefill, 1.0)
    uf = target_util * shapes.flops
    a0 = uf * (1.0 - shapes.a / budget)
    a1 = uf * o * k + p
    a2 = p * o * k
    disc = np.maximum(a1 * a1 - 4.0 * a2 * a0, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        root = np.where(a0 > 0, 2.0 * a0 / (a1 + np.sqrt(disc)), 0.0)
    m = shapes.kv_cap / np.maximum(context, 1.0)
    kv = m / (o * (shapes.a + m * k))
    return np.maximum(np.minimum(root, kv), 0.0)
