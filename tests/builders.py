"""Fluent-ish builders for small pools and workloads used across tests."""

from __future__ import annotations

import numpy as np

from computepool.model.accelerator import AcceleratorType
from computepool.model.job import Job
from computepool.model.pool import Node, Pool
from computepool.model.region import Region
from computepool.model.throughput import Throughputs
from computepool.model.workload import Workload


def accel(
    name: str, tflops: float = 100.0, stack: str = "cuda", price: float | None = 1.0
) -> AcceleratorType:
    return AcceleratorType(
        name=name,
        vendor="test",
        stack=stack,
        bf16_tflops=tflops,
        memory_gib=80,
        memory_bw_gbs=2000,
        interconnect_gbs=400,
        tdp_w=400,
        h100_equiv=tflops / 989.0,
        price_per_hour=price,
    )


def make_pool(
    spec: dict[str, tuple[int, int]],
    accels: list[AcceleratorType] | None = None,
    region: str = "r1",
) -> Pool:
    """``spec``: accelerator name -> (nodes, per_node)."""
    accels = accels or [accel(a) for a in spec]
    nodes = []
    for a, (n, per) in spec.items():
        nodes += [Node(f"{a}-{i}", region, a, per, island=a) for i in range(n)]
    regions = {region: Region(region, "CN", 0.1, 1.25, 500.0)}
    return Pool("test", {a.name: a for a in accels}, regions, tuple(nodes))


def rates_table(pool: Pool, table: dict[str, dict[str, float]], sfs=(1, 2, 4, 8)) -> Throughputs:
    """Throughputs where job type ``t`` runs at ``table[t][accel] * sf`` steps/s."""
    measured = {
        (jt, sf): {a: r * sf for a, r in row.items()} for jt, row in table.items() for sf in sfs
    }
    return Throughputs(pool.accelerators, measured)


def workload(jobs: list[Job]) -> Workload:
    return Workload.from_jobs(jobs, name="test")


def jobs_at(times, job_type="m", steps=3600.0, workers=1, **kw) -> list[Job]:
    return [
        Job(
            id=str(i), job_type=job_type, total_steps=steps, arrival=float(t), workers=workers, **kw
        )
        for i, t in enumerate(np.atleast_1d(times))
    ]
