"""Metering: what a placement interval used, and usage per tenant and flavor.

One ledger entry per job per placement interval (an allocation from start to end):
accelerator-seconds, energy (TDP x PUE x time), cost (the flavor's price per
accelerator-hour) and carbon (energy x the region's grid intensity).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from computepool.admission.quota import over_budget as quota_over_budget
from computepool.model.pool import Flavor, Pool
from computepool.server.db import AllocationRow, JobRow, LedgerRow, TenantRow


@dataclass(frozen=True)
class Metered:
    accel_seconds: float
    energy_kwh: float
    cost_usd: float
    carbon_kg: float


def meter(pool: Pool, flavor: str, accelerators: int, seconds: float) -> Metered:
    """Usage of ``accelerators`` of ``flavor`` held for ``seconds``, with the pool's own
    per-flavor power (TDP x PUE), price and grid intensity (as the simulator accounts)."""
    acc_s = max(seconds, 0.0) * accelerators
    try:
        f = pool.flavor_index.get(Flavor.parse(flavor))
    except ValueError:
        f = None
    if f is None:
        return Metered(acc_s, 0.0, 0.0, 0.0)
    kwh = acc_s * float(pool.flavor_power_kw[f]) / 3600.0
    return Metered(
        acc_s,
        kwh,
        acc_s / 3600.0 * float(pool.flavor_price[f]),
        kwh * float(pool.flavor_carbon[f]) / 1000.0,
    )


def close_allocation(
    s: Session, pool: Pool, alloc: AllocationRow, tenant_id: int, end: float, reason: str
) -> LedgerRow:
    end = max(end, alloc.started_at)
    alloc.ended_at, alloc.end_reason = end, reason
    m = meter(pool, alloc.flavor, alloc.accelerators, end - alloc.started_at)
    egress = alloc.egress_usd or 0.0  # data copied in at the start (as the simulator charges)
    row = LedgerRow(
        job_id=alloc.job_id,
        tenant_id=tenant_id,
        allocation_id=alloc.id,
        flavor=alloc.flavor,
        start=alloc.started_at,
        end=end,
        accel_seconds=m.accel_seconds,
        energy_kwh=m.energy_kwh,
        cost_usd=m.cost_usd + egress,
        carbon_kg=m.carbon_kg,
        egress_usd=alloc.egress_usd,
    )
    s.add(row)
    return row


@dataclass(frozen=True)
class Usage:
    tenant: str
    flavor: str
    accel_seconds: float
    energy_kwh: float
    cost_usd: float
    carbon_kg: float
    jobs: int


def usage(
    s: Session,
    pool: Pool,
    tenant_id: int | None = None,
    since: float | None = None,
    now: float | None = None,
) -> list[Usage]:
    """Closed ledger entries plus what open allocations have used so far, per tenant and flavor.

    With ``since``, only intervals ending (or, if open, running) after it count, clipped at it.
    """
    now = time.time() if now is None else now
    acc: dict[tuple[str, str], list[float]] = {}
    jobs: dict[tuple[str, str], set[int]] = {}
    q = select(LedgerRow, TenantRow.name).join(TenantRow, LedgerRow.tenant_id == TenantRow.id)
    if tenant_id is not None:
        q = q.where(LedgerRow.tenant_id == tenant_id)
    if since is not None:
        q = q.where(LedgerRow.end > since)
    for e, name in s.execute(q):
        key = (name, e.flavor)
        if since is not None and e.start < since:
            frac = (e.end - since) / max(e.end - e.start, 1e-9)
            vals = [
                e.accel_seconds * frac,
                e.energy_kwh * frac,
                e.cost_usd * frac,
                e.carbon_kg * frac,
            ]
        else:
            vals = [e.accel_seconds, e.energy_kwh, e.cost_usd, e.carbon_kg]
        tot = acc.setdefault(key, [0.0, 0.0, 0.0, 0.0])
        for i, v in enumerate(vals):
            tot[i] += v
        jobs.setdefault(key, set()).add(e.job_id)
    q2 = (
        select(AllocationRow, JobRow.tenant_id, TenantRow.name)
        .join(JobRow, AllocationRow.job_id == JobRow.id)
        .join(TenantRow, JobRow.tenant_id == TenantRow.id)
        .where(AllocationRow.ended_at.is_(None))
    )
    if tenant_id is not None:
        q2 = q2.where(JobRow.tenant_id == tenant_id)
    for a, _tid, name in s.execute(q2):
        start = a.started_at if since is None else max(a.started_at, since)
        m = meter(pool, a.flavor, a.accelerators, now - start)
        egress = (a.egress_usd or 0.0) if since is None or a.started_at >= since else 0.0
        usd = m.cost_usd + egress
        tot = acc.setdefault((name, a.flavor), [0.0, 0.0, 0.0, 0.0])
        for i, v in enumerate((m.accel_seconds, m.energy_kwh, usd, m.carbon_kg)):
            tot[i] += v
        jobs.setdefault((name, a.flavor), set()).add(a.job_id)
    return [Usage(t, f, *vals, len(jobs[(t, f)])) for (t, f), vals in sorted(acc.items())]


def spent_by_tenant(s: Session, pool: Pool) -> dict[str, tuple[float, float]]:
    """(accelerator-hours, USD) used per tenant so far, open allocations included."""
    out: dict[str, list[float]] = {}
    q = (
        select(TenantRow.name, func.sum(LedgerRow.accel_seconds), func.sum(LedgerRow.cost_usd))
        .join(TenantRow, LedgerRow.tenant_id == TenantRow.id)
        .group_by(TenantRow.name)
    )
    for name, acc_s, usd in s.execute(q):
        out[name] = [float(acc_s or 0.0) / 3600.0, float(usd or 0.0)]
    now = time.time()
    q2 = (
        select(AllocationRow, TenantRow.name)
        .join(JobRow, AllocationRow.job_id == JobRow.id)
        .join(TenantRow, JobRow.tenant_id == TenantRow.id)
        .where(AllocationRow.ended_at.is_(None))
    )
    for a, name in s.execute(q2):
        m = meter(pool, a.flavor, a.accelerators, now - a.started_at)
        tot = out.setdefault(name, [0.0, 0.0])
        tot[0] += m.accel_seconds / 3600.0
        tot[1] += m.cost_usd + (a.egress_usd or 0.0)
    return {k: (v[0], v[1]) for k, v in out.items()}


def over_budget(spent: dict[str, tuple[float, float]], tenants: list[TenantRow]) -> set[str]:
    """``admission.quota.over_budget`` over the store's tenant rows."""
    return quota_over_budget(spent, tenants)  # type: ignore[arg-type]  # same attributes
