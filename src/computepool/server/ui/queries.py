"""What the dashboard reads: SQL aggregates (GROUP BY, LIMIT/OFFSET on indexed columns) and
small NumPy reductions, so a page costs the same with 10 jobs or 10,000.

``tenant_id`` is the scope everywhere: a tenant's id (only its own rows) or None (the admin:
everything). Functions take a Session and return plain data; no HTML here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import String, case, cast, func, literal, select
from sqlalchemy.orm import Session

from computepool.model.pool import Pool
from computepool.server.db import (
    ACTIVE,
    AllocationRow,
    AuditRow,
    JobEventRow,
    JobRow,
    LedgerRow,
    TenantRow,
)
from computepool.server.ledger import Usage, meter

RESIDENCY_ACTOR = "check:residency"
JOB_COLUMNS = (
    JobRow.id,
    JobRow.tenant_id,
    JobRow.name,
    JobRow.status,
    JobRow.accelerators,
    JobRow.flavor,
    JobRow.submitted_at,
    JobRow.started_at,
    JobRow.finished_at,
    JobRow.reason,
    JobRow.preemptions,
    JobRow.cancel_requested,
)


@dataclass(frozen=True)
class JobFilter:
    #: Scope: a tenant's own jobs, or (None) every tenant's.
    tenant_id: int | None = None
    statuses: tuple[str, ...] = ()
    flavor: str = ""
    name: str = ""


def _scoped(q, tenant_id: int | None, column=JobRow.tenant_id):
    return q if tenant_id is None else q.where(column == tenant_id)


def _filtered(q, f: JobFilter):
    q = _scoped(q, f.tenant_id)
    if f.statuses:
        q = q.where(JobRow.status.in_(list(f.statuses)))
    if f.flavor:
        q = q.where(JobRow.flavor == f.flavor)
    if f.name:
        q = q.where(JobRow.name.contains(f.name, autoescape=True))
    return q


def jobs_page(s: Session, f: JobFilter, limit: int, offset: int) -> tuple[list[dict], int]:
    """One page of jobs, newest first, and how many match in all."""
    total = s.scalar(_filtered(select(func.count()).select_from(JobRow), f)) or 0
    q = _filtered(select(*JOB_COLUMNS), f).order_by(JobRow.id.desc()).limit(limit).offset(offset)
    return [dict(r._mapping) for r in s.execute(q)], int(total)


def status_counts(s: Session, tenant_id: int | None) -> dict[str, int]:
    q = _scoped(select(JobRow.status, func.count()).group_by(JobRow.status), tenant_id)
    return {str(k): int(n) for k, n in s.execute(q)}


def active_by_tenant(s: Session, tenant_id: int | None) -> dict[int, dict[str, tuple[int, int]]]:
    """tenant id -> status -> (jobs, accelerators), for jobs not finished."""
    q = _scoped(
        select(JobRow.tenant_id, JobRow.status, func.count(), func.sum(JobRow.accelerators))
        .where(JobRow.status.in_(ACTIVE))
        .group_by(JobRow.tenant_id, JobRow.status),
        tenant_id,
    )
    out: dict[int, dict[str, tuple[int, int]]] = {}
    for t, st, n, acc in s.execute(q):
        out.setdefault(int(t), {})[str(st)] = (int(n), int(acc or 0))
    return out


def running_by_tenant_flavor(
    s: Session, tenant_id: int | None = None
) -> dict[tuple[int, str], int]:
    """Accelerators held now per (tenant id, flavor)."""
    q = _scoped(
        select(JobRow.tenant_id, JobRow.flavor, func.sum(JobRow.accelerators))
        .where(JobRow.status == "running")
        .group_by(JobRow.tenant_id, JobRow.flavor),
        tenant_id,
    )
    return {(int(t), str(f)): int(a or 0) for t, f, a in s.execute(q) if f}


def interval_means(
    start: np.ndarray,
    end: np.ndarray,
    weight: np.ndarray,
    group: np.ndarray,
    groups: int,
    edges: np.ndarray,
) -> np.ndarray:
    """Mean of the summed weights of [start, end) intervals over each bucket between
    consecutive ``edges``, per group: (len(edges) - 1, groups)."""
    nb = len(edges) - 1
    out = np.zeros((max(nb, 0), groups))
    if nb <= 0 or len(start) == 0:
        return out
    # time each interval spent before each edge: integral of its indicator up to the edge
    upto = np.clip(edges[None, :] - start[:, None], 0.0, None)
    upto = np.minimum(upto, np.maximum(end - start, 0.0)[:, None])
    inside = np.diff(upto, axis=1) * weight[:, None]  # (n, nb) weighted time in each bucket
    np.add.at(out.T, group, inside)
    return out / np.diff(edges)[:, None]


def busy_series(
    s: Session, flavors: Sequence[str], edges: np.ndarray, now: float, tenant_id: int | None
) -> np.ndarray:
    """Mean accelerators held per bucket and flavor, from the placement intervals."""
    t0, t1 = float(edges[0]), float(edges[-1])
    q = select(
        AllocationRow.flavor,
        AllocationRow.accelerators,
        AllocationRow.started_at,
        AllocationRow.ended_at,
    ).where(
        AllocationRow.started_at < t1,
        (AllocationRow.ended_at.is_(None)) | (AllocationRow.ended_at > t0),
    )
    if tenant_id is not None:
        q = q.join(JobRow, JobRow.id == AllocationRow.job_id).where(JobRow.tenant_id == tenant_id)
    rows = s.execute(q).all()
    index = {f: i for i, f in enumerate(flavors)}
    rows = [r for r in rows if r[0] in index]
    if not rows:
        return np.zeros((len(edges) - 1, len(flavors)))
    grp = np.array([index[r[0]] for r in rows], dtype=np.int64)
    acc = np.array([r[1] for r in rows], dtype=float)
    st = np.array([r[2] for r in rows], dtype=float)
    en = np.array([now if r[3] is None else r[3] for r in rows], dtype=float)
    return interval_means(st, en, acc, grp, len(flavors), edges)


def queue_series(s: Session, edges: np.ndarray, now: float, tenant_id: int | None) -> np.ndarray:
    """Mean jobs waiting per bucket: from submission to first start (or to the end, or now).

    A preempted job waiting again after its first start is not counted (the store keeps no
    per-interval queue record)."""
    t0, t1 = float(edges[0]), float(edges[-1])
    left = func.coalesce(JobRow.started_at, JobRow.finished_at)
    q = _scoped(
        select(JobRow.submitted_at, left).where(
            JobRow.submitted_at < t1, left.is_(None) | (left > t0)
        ),
        tenant_id,
    )
    rows = s.execute(q).all()
    if not rows:
        return np.zeros(len(edges) - 1)
    st = np.array([r[0] for r in rows], dtype=float)
    en = np.array([now if r[1] is None else r[1] for r in rows], dtype=float)
    out = interval_means(st, en, np.ones(len(rows)), np.zeros(len(rows), dtype=np.int64), 1, edges)
    return out[:, 0]


def usage(
    s: Session, pool: Pool, tenant_id: int | None, since: float | None, now: float
) -> list[Usage]:
    """Per tenant and flavor, as ``ledger.usage`` computes it, but summed in SQL (closed
    entries clipped at ``since``) plus what open placement intervals have used so far."""
    e = LedgerRow
    frac = (
        literal(1.0)
        if since is None
        else case(
            ((e.start < since) & ((e.end - e.start) > 1e-9), (e.end - since) / (e.end - e.start)),
            else_=1.0,
        )
    )
    q = select(
        TenantRow.name,
        e.flavor,
        func.sum(e.accel_seconds * frac),
        func.sum(e.energy_kwh * frac),
        func.sum(e.cost_usd * frac),
        func.sum(e.carbon_kg * frac),
        func.count(func.distinct(e.job_id)),
    ).join(TenantRow, e.tenant_id == TenantRow.id)
    q = _scoped(q, tenant_id, e.tenant_id).group_by(TenantRow.name, e.flavor)
    if since is not None:
        q = q.where(e.end > since)
    acc: dict[tuple[str, str], list[float]] = {}
    for name, flavor, *vals in s.execute(q):
        acc[(str(name), str(flavor))] = [float(v or 0.0) for v in vals]
    q2 = (
        select(AllocationRow, TenantRow.name)
        .join(JobRow, AllocationRow.job_id == JobRow.id)
        .join(TenantRow, JobRow.tenant_id == TenantRow.id)
        .where(AllocationRow.ended_at.is_(None))
    )
    q2 = _scoped(q2, tenant_id)
    open_rows = s.execute(q2).all()
    seen = set()
    if open_rows:  # a job already counted from a closed entry of the same flavor counts once
        ids = [a.job_id for a, _ in open_rows]
        qs = select(e.job_id, e.flavor).where(e.job_id.in_(ids))
        if since is not None:
            qs = qs.where(e.end > since)
        seen = {(int(j), str(f)) for j, f in s.execute(qs)}
    for a, name in open_rows:
        start = a.started_at if since is None else max(a.started_at, since)
        m = meter(pool, a.flavor, a.accelerators, now - start)
        tot = acc.setdefault((str(name), a.flavor), [0.0] * 5)
        for i, v in enumerate((m.accel_seconds, m.energy_kwh, m.cost_usd, m.carbon_kg)):
            tot[i] += v
        if (a.job_id, a.flavor) not in seen:
            tot[4] += 1
            seen.add((a.job_id, a.flavor))
    return [Usage(t, f, *v[:4], int(v[4])) for (t, f), v in sorted(acc.items())]


def ledger_series(
    s: Session,
    pool: Pool,
    edges: np.ndarray,
    tenant_id: int | None,
    by_tenant: bool,
    now: float,
) -> tuple[list[str], np.ndarray]:
    """Cost (USD) per bucket, per tenant (admin) or per flavor: (labels, (buckets, labels)).

    Closed ledger entries count in the bucket of their end; open placement intervals (running
    jobs) count what they have used since the window opened, in the bucket of ``now``, as the
    usage tiles above the chart count them."""
    t0, t1 = float(edges[0]), float(edges[-1])
    key = TenantRow.name if by_tenant else LedgerRow.flavor
    q = (
        select(key, LedgerRow.end, LedgerRow.cost_usd)
        .join(TenantRow, LedgerRow.tenant_id == TenantRow.id)
        .where(LedgerRow.end > t0, LedgerRow.end <= t1)
    )
    rows = [(str(k), float(end), float(cost)) for k, end, cost in s.execute(
        _scoped(q, tenant_id, LedgerRow.tenant_id)
    )]  # fmt: skip
    open_key = TenantRow.name if by_tenant else AllocationRow.flavor
    q2 = (
        select(open_key, AllocationRow.flavor, AllocationRow.accelerators, AllocationRow.started_at)
        .join(JobRow, AllocationRow.job_id == JobRow.id)
        .join(TenantRow, JobRow.tenant_id == TenantRow.id)
        .where(AllocationRow.ended_at.is_(None), AllocationRow.started_at < t1)
    )
    for k, flavor, n, start in s.execute(_scoped(q2, tenant_id)):
        so_far = meter(pool, flavor, n, max(0.0, now - max(float(start), t0)))
        rows.append((str(k), min(now, t1), so_far.cost_usd))
    labels = sorted({r[0] for r in rows})
    out = np.zeros((len(edges) - 1, len(labels)))
    if not rows:
        return labels, out
    ix = {k: i for i, k in enumerate(labels)}
    grp = np.array([ix[r[0]] for r in rows], dtype=np.int64)
    end = np.array([r[1] for r in rows], dtype=float)
    cost = np.array([r[2] for r in rows], dtype=float)
    b = np.clip(np.searchsorted(edges, end, side="left") - 1, 0, len(edges) - 2)
    np.add.at(out, (b, grp), cost)
    return labels, out
    ix = {k: i for i, k in enumerate(labels)}
    grp = np.array([ix[str(r[0])] for r in rows], dtype=np.int64)
    end = np.array([r[1] for r in rows], dtype=float)
    cost = np.array([r[2] for r in rows], dtype=float)
    b = np.clip(np.searchsorted(edges, end, side="left") - 1, 0, len(edges) - 2)
    np.add.at(out, (b, grp), cost)
    return labels, out


def job_events(s: Session, job_id: int) -> list[dict]:
    q = select(JobEventRow.at, JobEventRow.kind, JobEventRow.detail).where(
        JobEventRow.job_id == job_id
    )
    return [dict(r._mapping) for r in s.execute(q.order_by(JobEventRow.id))]


def job_allocations(s: Session, job_id: int) -> list[dict]:
    q = select(
        AllocationRow.attempt,
        AllocationRow.flavor,
        AllocationRow.accelerators,
        AllocationRow.workers,
        AllocationRow.started_at,
        AllocationRow.ended_at,
        AllocationRow.end_reason,
    ).where(AllocationRow.job_id == job_id)
    return [dict(r._mapping) for r in s.execute(q.order_by(AllocationRow.id))]


def job_cost(s: Session, job_id: int) -> tuple[float, float, float]:
    """(accelerator-hours, USD, kWh) of the job's closed ledger entries."""
    q = select(
        func.sum(LedgerRow.accel_seconds),
        func.sum(LedgerRow.cost_usd),
        func.sum(LedgerRow.energy_kwh),
    ).where(LedgerRow.job_id == job_id)
    a, c, k = s.execute(q).one()
    return float(a or 0.0) / 3600.0, float(c or 0.0), float(k or 0.0)


def _residency_q(q, tenant_id: int | None, outcome: str, job_id: int | None):
    q = q.where(AuditRow.actor == RESIDENCY_ACTOR)
    if outcome:
        q = q.where(AuditRow.action == f"residency.{outcome}")
    if job_id is not None:
        q = q.where(AuditRow.target == f"job{job_id}")
    if tenant_id is not None:
        own = select(literal("job").concat(cast(JobRow.id, String))).where(
            JobRow.tenant_id == tenant_id
        )
        q = q.where(AuditRow.target.in_(own))
    return q


def residency_page(
    s: Session,
    tenant_id: int | None,
    limit: int,
    offset: int,
    outcome: str = "",
    job_id: int | None = None,
) -> tuple[list[dict], int, dict[str, int]]:
    """Residency decisions (newest first), how many match, and counts per outcome."""
    counts_q = _residency_q(
        select(AuditRow.action, func.count()).group_by(AuditRow.action), tenant_id, "", job_id
    )
    counts = {str(a).split(".", 1)[-1]: int(n) for a, n in s.execute(counts_q)}
    total = counts.get(outcome, 0) if outcome else sum(counts.values())
    q = _residency_q(
        select(AuditRow.at, AuditRow.target, AuditRow.detail), tenant_id, outcome, job_id
    )
    rows = s.execute(q.order_by(AuditRow.id.desc()).limit(limit).offset(offset)).all()
    return [dict(r._mapping) for r in rows], total, counts


def tenant_rows(s: Session, tenant_id: int | None) -> list[TenantRow]:
    q = _scoped(select(TenantRow).order_by(TenantRow.name), tenant_id, TenantRow.id)
    return list(s.scalars(q))
