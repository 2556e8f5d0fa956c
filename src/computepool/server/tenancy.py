"""A submission's datasets belong to its tenant: handlers it owns, and an audit of refusals.

- A dataset's ``handler`` (the data controller whose approvals and per-year person counters
  the residency check uses) must be the tenant's own: its name, or a handler an admin gave it
  (``handlers`` on the tenant). An empty handler becomes the tenant's name, so tenants never
  share a person counter or an approval by leaving it out.
- A submission refused for its data (a handler not its own, a data class no rule names, no
  region of the pool may process it) is written to the residency audit, with the tenant and
  the reason, as ``residency.rejected`` with target ``submission:TENANT``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import sessionmaker

from computepool.server import store
from computepool.server.db import AuditRow
from computepool.server.residency_store import ACTOR, iso
from computepool.server.schemas import DatasetSpec, JobSpec

HANDLER_RULE = "residency:HANDLER"
CLASS_RULE = "residency:UNKNOWN_CLASS"


class NotOwned(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field, reason


def foreign_handlers(spec: JobSpec, tenant: str) -> set[str]:
    """Handlers the datasets name other than the tenant's own name (need a look-up)."""
    return {d.handler for d in spec.datasets if d.handler and d.handler != tenant}


def own_datasets(spec: JobSpec, tenant: str, owned: Sequence[str]) -> JobSpec:
    """``spec`` with every dataset's handler the tenant's (empty: its name), or ``NotOwned``
    naming the first dataset whose handler belongs to someone else."""
    if not spec.datasets:
        return spec
    mine = {tenant, *owned}
    out: list[DatasetSpec] = []
    for i, d in enumerate(spec.datasets):
        if d.handler and d.handler not in mine:
            raise NotOwned(
                f"datasets[{i}].handler",
                f"handler {d.handler!r} does not belong to tenant {tenant!r} (its handlers: "
                f"{', '.join(sorted(mine))}); a dataset may name only its tenant's own "
                "handlers: their approvals and person counters are that tenant's alone",
            )
        out.append(d if d.handler else d.model_copy(update={"handler": tenant}))
    return spec.model_copy(update={"datasets": out})


def owned_handlers(sessions: sessionmaker, tenant_id: int) -> list[str]:
    with sessions() as s:
        return store.handlers_of(s, tenant_id)


def refusal_record(
    tenant: str, spec: JobSpec, field: str, reason: str, decided_by: str, now: float
) -> dict[str, Any]:
    """A residency audit record of a refused submission (the shape of a check's records)."""
    return {
        "time": now,
        "job": "",
        "tenant": tenant,
        "outcome": "rejected",
        "stage": "submission",
        "region": "",
        "flavor": "",
        "rules_consulted": [],
        "decided_by": [decided_by],
        "approvals": [],
        "transfer_gb": 0.0,
        "egress_usd": 0.0,
        "delay_s": 0.0,
        "reason": reason,
        "field": field,
        "datasets": [
            {"name": d.name, "data_class": d.data_class, "origin": d.origin, "handler": d.handler}
            for d in spec.datasets[:64]
        ],
        "exports": [],
    }


def write_refusal(sessions: sessionmaker, lock, rec: dict[str, Any]) -> None:
    rec = {**rec, "at": iso(rec["time"])}
    with lock, sessions() as s:
        s.add(
            AuditRow(
                at=rec["time"],
                actor=ACTOR,
                action="residency.rejected",
                target=f"submission:{rec['tenant']}"[:128],
                detail=rec,
            )
        )
        s.commit()


def decided_by_of(field: str, reason: str, checks: Sequence[object], spec: JobSpec, pool) -> str:
    """The rule a data refusal came from: the handler or class check, or the residency rule
    that leaves no region (as the check's own rejections name it)."""
    if field.endswith(".handler"):
        return HANDLER_RULE
    if field.endswith(".data_class"):
        return CLASS_RULE
    from computepool.model.job import Dataset
    from computepool.server.residency_store import residency_check

    check = residency_check(checks)
    if check is None:
        return "residency"
    _, st = check.flavor_mask(tuple(Dataset(**d.model_dump()) for d in spec.datasets), pool)
    return st.source or "residency"
