"""Small services, streams and pools for the serving tests."""

from __future__ import annotations

import numpy as np

from computepool.model.accelerator import AcceleratorType
from computepool.model.pool import Node, Pool
from computepool.model.region import Region
from computepool.serving.models import ModelSpec, model_fields
from computepool.serving.service import ServiceSpec, ServingConfig, ServingWorkload
from computepool.serving.streams import RequestStream, TrafficSpec


def gpu(name: str = "G", tflops: float = 989.0, mem: float = 80.0, bw: float = 3350.0):
    return AcceleratorType(
        name=name,
        vendor="test",
        stack="cuda",
        bf16_tflops=tflops,
        memory_gib=mem,
        memory_bw_gbs=bw,
        interconnect_gbs=900,
        tdp_w=700,
        h100_equiv=tflops / 989.0,
        price_per_hour=2.0,
    )


def one_node_pool(per_node: int = 8, nodes: int = 1, accel: AcceleratorType | None = None) -> Pool:
    a = accel or gpu()
    ns = tuple(Node(f"n{i}", "r1", a.name, per_node, island="i0") for i in range(nodes))
    return Pool("tiny", {a.name: a}, {"r1": Region("r1", "CN", 0.1, 1.2, 500.0)}, ns)


def model(name: str = "qwen2.5-7b") -> ModelSpec:
    return ModelSpec(name=name, **model_fields(name))


def stream(rate: np.ndarray, dt: float = 1.0, prompt: float = 1000, output: float = 100, seed=0):
    """Poisson arrivals with piecewise-constant ``rate`` (req/s) per ``dt`` seconds."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(np.asarray(rate) * dt)
    t = np.concatenate(
        [k * dt + np.sort(rng.uniform(0, dt, c)) for k, c in enumerate(counts) if c]
        or [np.zeros(0)]
    )
    n = len(t)
    return RequestStream(t, np.full(n, float(prompt)), np.full(n, float(output)))


def workload(
    services: list[ServiceSpec],
    streams: list[RequestStream],
    horizon: float,
    past: list[RequestStream] | None = None,
    **cfg: object,
) -> ServingWorkload:
    """``past`` (the previous period the controller sizes from): the streams themselves
    unless given, i.e. yesterday looked like today."""
    config = ServingConfig(**cfg)  # type: ignore[arg-type]
    return ServingWorkload(
        tuple(services),
        tuple(streams),
        TrafficSpec(duration_s=horizon),
        config,
        "test",
        past=tuple(streams if past is None else past),
    )
