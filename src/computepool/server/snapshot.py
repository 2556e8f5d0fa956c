"""The live pool as it stands, for a what-if simulation (``cpool snapshot``, then
``cpool simulate --from``): the pool's nodes (and which are cordoned), the tenants with their
quotas, budgets and spending, and every queued and running job with its progress.

The jobs are written in the workload file's job format (``traces/jobfile.py``) and the tenants
in its ``tenants:`` format, so the simulator reads them with the readers it already has."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from computepool.server import ledger, store
from computepool.server.db import ACTIVE, JobRow, TenantRow

#: The snapshot format's version (``kind: computepool.snapshot``).
SNAPSHOT_VERSION = 1


def _quota_text(q: dict[str, Any]) -> str:
    parts = [q.get("nominal", 0.0), q.get("borrowing_limit"), q.get("lending_limit")]
    text = ":".join("" if v is None else f"{float(v):g}" for v in parts).rstrip(":")
    return text or "0"


def tenants_section(s: Session, spent: dict[str, tuple[float, float]]) -> list[dict[str, Any]]:
    out = []
    for r in store.tenants(s):
        hours, usd = spent.get(r.name, (0.0, 0.0))
        out.append(
            {
                "name": r.name,
                "weight": r.weight,
                "cohort": r.cohort,
                "quotas": {k: _quota_text(v) for k, v in sorted((r.quotas or {}).items())},
                "budget_accel_hours": r.budget_accel_hours,
                "budget_usd": r.budget_usd,
                "spent_accel_hours": round(hours, 6),
                "spent_usd": round(usd, 6),
            }
        )
    return out


def job_record(row: JobRow, tenant: str, steps_done: float, accel: str | None) -> dict[str, Any]:
    """A stored job as a workload-file record, with what the snapshot adds (status, times,
    progress, where it runs)."""
    spec = row.spec or {}
    work = float(spec.get("work", 3600.0))
    return {
        "id": str(row.id),
        "tenant": tenant,
        "kind": spec.get("kind", "train"),
        "job_type": spec.get("job_type", "generic"),
        "workers": int(spec.get("workers", 1)),
        "accel_per_worker": float(spec.get("accelerators_per_worker", 1)),
        "accelerators": [accel] if accel else list(spec.get("accelerator_types", [])),
        "stacks": list(spec.get("stacks", [])),
        "total_steps": max(work - steps_done, 0.0),
        "priority": int(spec.get("priority", 0)),
        "weight": float(spec.get("weight", 1.0)),
        "preemptible": bool(spec.get("preemptible", True)),
        "datasets": list(spec.get("datasets", [])),
        "status": row.status,
        "submitted_at": row.submitted_at,
        "started_at": row.started_at,
        "flavor": row.flavor,
        "steps_done": steps_done,
    }


def snapshot(service: Any, s: Session, settings: dict[str, Any]) -> dict[str, Any]:
    """The document ``GET /v1/snapshot`` answers (admin only)."""
    pool, sched = service.pool, service.scheduler
    spent = ledger.spent_by_tenant(s, pool)
    names = {t.id: t.name for t in s.scalars(select(TenantRow))}
    down = sorted(getattr(service.cluster, "down", ()) or ())
    jobs = []
    rows = s.scalars(select(JobRow).where(JobRow.status.in_(ACTIVE)).order_by(JobRow.id)).all()
    for row in rows:
        k = service.index.of_id.get(row.id)
        done = float(sched.steps_done(k)) if k is not None else 0.0
        accel = row.flavor.split("/", 1)[1] if row.status == "running" and row.flavor else None
        jobs.append(job_record(row, names.get(row.tenant_id, "?"), done, accel))
    return {
        "kind": "computepool.snapshot",
        "version": SNAPSHOT_VERSION,
        "taken_at": time.time(),
        "settings": settings,
        "pool": {
            "name": pool.name,
            "nodes": [
                {
                    "name": n.name,
                    "region": n.region,
                    "accelerator": n.accelerator,
                    "count": n.count,
                    "island": n.island,
                    "cpu_milli": n.cpu_milli,
                    "memory_mib": n.memory_mib,
                }
                for n in pool.nodes
            ],  # fmt: skip
            "cordoned": [pool.nodes[i].name for i in down],
        },
        "tenants": tenants_section(s, spent),
        "jobs": jobs,
    }
