"""Admission of services: a service no flavor of the pool can ever run is rejected with why."""

from __future__ import annotations

import numpy as np

from computepool.model.pool import Pool
from computepool.model.status import Status
from computepool.serving.perf import ShapeTable, idle_ttft, max_tp_per_flavor
from computepool.serving.service import ServiceSpec, ServingConfig

SOURCE = "serving"


def _allowed(svc: ServiceSpec, pool: Pool) -> list[int]:
    return [
        f
        for f, (flv, acc) in enumerate(zip(pool.flavors, pool.flavor_accelerators, strict=True))
        if (not svc.accelerators or acc.name in svc.accelerators)
        and (not svc.regions or flv.region in svc.regions)
    ]


def service_status(
    svc: ServiceSpec,
    pool: Pool,
    shapes: ShapeTable,
    usable: np.ndarray,
    p99_prompt: float,
    p99_flops: float,
    cfg: ServingConfig,
) -> Status:
    """OK, or UNRESOLVABLE with the constraint that no allowed flavor can meet."""
    allowed = _allowed(svc, pool)
    m = svc.model
    if not allowed:
        have = sorted({a.name for a in pool.flavor_accelerators})
        want = "/".join(svc.accelerators) or "any"
        where = f" in {'/'.join(svc.regions)}" if svc.regions else ""
        return Status.unresolvable(
            f"service {svc.name!r}: pool {pool.name!r} has no {want}{where} "
            f"(it has {', '.join(have)})",
            SOURCE,
        )
    if len(shapes) == 0:
        max_tp = max_tp_per_flavor(pool)
        usable_frac = cfg.perf.memory_usable
        best = max(
            (
                max_tp[f] * pool.flavor_accelerators[f].memory_gib * usable_frac,
                f,
            )
            for f in allowed
        )
        acc = pool.flavor_accelerators[best[1]].name
        need = (m.weight_bytes + cfg.perf.min_kv_tokens * m.kv_bytes_per_token) / 1e9
        return Status.unresolvable(
            f"service {svc.name!r}: model {m.name!r} needs {need:,.0f} GB "
            f"({m.weight_bytes / 1e9:,.0f} GB of weights + KV cache for "
            f"{cfg.perf.min_kv_tokens:,} tokens) but the largest replica an allowed flavor "
            f"offers is {best[0]:,.0f} GB usable ({max_tp[best[1]]} x {acc} in one node)",
            SOURCE,
        )
    budget = cfg.perf.tbt_budget * svc.tbt_slo_s
    i = int(np.argmin(shapes.a))
    if shapes.a[i] > 0.8 * budget:
        return Status.unresolvable(
            f"service {svc.name!r}: TBT p99 SLO {svc.tbt_slo_s * 1000:.0f} ms cannot be met: "
            f"the fastest decode step of {m.name!r} on any allowed flavor is "
            f"{shapes.a[i] * 1000:.1f} ms ({shapes.names[i]}), above 80 % of the "
            f"{budget * 1000:.0f} ms step budget",
            SOURCE,
        )
    ttft = idle_ttft(shapes, p99_flops)
    k = int(np.argmin(ttft))
    if ttft[k] > 0.6 * svc.ttft_slo_s:
        return Status.unresolvable(
            f"service {svc.name!r}: TTFT p99 SLO {svc.ttft_slo_s:g} s cannot be met: its p99 "
            f"prompt ({p99_prompt:,.0f} tokens) takes {ttft[k]:.2f} s to prefill on an idle "
            f"{shapes.names[k]}, the fastest allowed shape (limit: 60 % of the SLO)",
            SOURCE,
        )
    if not usable.any():
        return Status.unresolvable(
            f"service {svc.name!r}: no single shape meets both SLOs when idle "
            "(the fast-decode and the fast-prefill shapes differ)",
            SOURCE,
        )
    return Status.success()
