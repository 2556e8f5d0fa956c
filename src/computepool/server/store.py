"""Data access for tenants, tokens, jobs and the audit log (no scheduling rules here)."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from computepool.model.tenant import FlavorQuota, Tenant
from computepool.server.db import (
    AllocationRow,
    AuditRow,
    HandlerRow,
    JobEventRow,
    JobRow,
    TenantRow,
    TokenRow,
)
from computepool.server.schemas import JobSpec, TenantIn

TOKEN_PREFIX = "cpool_"


class Conflict(Exception):
    """A request that clashes with what is stored (e.g. an idempotency key reused)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field, reason


@dataclass(frozen=True)
class Principal:
    token_id: int
    role: str  # "tenant" | "admin"
    tenant_id: int | None
    tenant: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.tenant or '-'}:token{self.token_id}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def audit(s: Session, actor: str, action: str, target: str = "", **detail: object) -> None:
    s.add(AuditRow(at=time.time(), actor=actor, action=action, target=target, detail=detail))


# ---- tenants ---------------------------------------------------------------------------
def tenant_by_name(s: Session, name: str) -> TenantRow | None:
    return s.scalars(select(TenantRow).where(TenantRow.name == name)).first()


def upsert_tenant(s: Session, t: TenantIn, actor: str) -> tuple[TenantRow, bool]:
    """Create or replace a tenant; ``Conflict`` when a handler it names (or its name) is
    another tenant's handler."""
    row = tenant_by_name(s, t.name)
    created = row is None
    if row is None:
        owner = s.get(HandlerRow, t.name)
        if owner is not None:
            raise Conflict("name", f"{t.name!r} is a data handler of another tenant")
        row = TenantRow(name=t.name, created_at=time.time())
        s.add(row)
    row.weight, row.cohort = t.weight, t.cohort
    row.quotas = {k: q.model_dump() for k, q in t.quotas.items()}
    row.budget_accel_hours, row.budget_usd = t.budget_accel_hours, t.budget_usd
    row.default_max_hours = t.default_max_hours
    row.requests_per_s, row.tokens_per_min = t.requests_per_s, t.tokens_per_min
    s.flush()
    if t.handlers is not None:
        set_handlers(s, row, t.handlers)
    audit(s, actor, "tenant.create" if created else "tenant.update", t.name, **t.model_dump())
    return row, created


def set_handlers(s: Session, tenant: TenantRow, handlers: Sequence[str]) -> None:
    """Make ``handlers`` the tenant's own (besides its name); each belongs to one tenant."""
    wanted = sorted(set(handlers) - {tenant.name})
    if wanted:
        taken = s.execute(
            select(HandlerRow.handler, TenantRow.name)
            .join(TenantRow, HandlerRow.tenant_id == TenantRow.id)
            .where(HandlerRow.handler.in_(wanted), HandlerRow.tenant_id != tenant.id)
        ).first()
        if taken is not None:
            raise Conflict("handlers", f"handler {taken[0]!r} belongs to tenant {taken[1]!r}")
        named = s.scalars(
            select(TenantRow.name).where(TenantRow.name.in_(wanted), TenantRow.id != tenant.id)
        ).first()
        if named is not None:
            raise Conflict("handlers", f"handler {named!r} is another tenant's own name")
    for h in s.scalars(select(HandlerRow).where(HandlerRow.tenant_id == tenant.id)):
        s.delete(h)
    s.flush()
    s.add_all(HandlerRow(handler=h, tenant_id=tenant.id) for h in wanted)


def handlers_of(s: Session, tenant_id: int) -> list[str]:
    """Handlers a tenant owns besides its own name."""
    return list(
        s.scalars(
            select(HandlerRow.handler)
            .where(HandlerRow.tenant_id == tenant_id)
            .order_by(HandlerRow.handler)
        )
    )


def to_tenant(row: TenantRow) -> Tenant:
    return Tenant(
        name=row.name,
        weight=row.weight,
        cohort=row.cohort,
        quotas={k: FlavorQuota(**v) for k, v in (row.quotas or {}).items()},
        budget_accel_hours=row.budget_accel_hours,
        budget_usd=row.budget_usd,
    )


def tenants(s: Session) -> list[TenantRow]:
    return list(s.scalars(select(TenantRow).order_by(TenantRow.name)))


# ---- tokens ----------------------------------------------------------------------------
def create_token(
    s: Session, role: str, tenant: TenantRow | None, actor: str, name: str = ""
) -> tuple[TokenRow, str]:
    token = new_token()
    row = TokenRow(
        tenant_id=None if tenant is None else tenant.id,
        role=role,
        name=name,
        token_hash=hash_token(token),
        created_at=time.time(),
    )
    s.add(row)
    s.flush()
    audit(s, actor, "token.create", f"token{row.id}", role=role, tenant=tenant and tenant.name)
    return row, token


def principal_for(s: Session, token: str) -> Principal | None:
    row = s.execute(
        select(TokenRow, TenantRow.name)
        .outerjoin(TenantRow, TokenRow.tenant_id == TenantRow.id)
        .where(TokenRow.token_hash == hash_token(token), TokenRow.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    tok, tenant = row
    return Principal(tok.id, tok.role, tok.tenant_id, tenant)


def revoke_token(s: Session, token_id: int, actor: str) -> bool:
    row = s.get(TokenRow, token_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = time.time()
    audit(s, actor, "token.revoke", f"token{token_id}")
    return True


# ---- jobs ------------------------------------------------------------------------------
def request_hash(spec: JobSpec) -> str:
    body = spec.model_dump(mode="json", exclude={"idempotency_key"})
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _existing(s: Session, tenant_id: int, key: str, digest: str) -> JobRow | None:
    row = s.scalars(
        select(JobRow).where(JobRow.tenant_id == tenant_id, JobRow.idempotency_key == key)
    ).first()
    if row is not None and row.request_hash != digest:
        raise Conflict(
            "idempotency_key", f"key {key!r} was used for a different request (job {row.id})"
        )
    return row


def submit_job(s: Session, p: Principal, spec: JobSpec, key: str | None) -> tuple[JobRow, bool]:
    """Insert a queued job and its first event in one transaction; (job, created).

    With an idempotency key, a repeat of the same request returns the job it created; the
    same key with a different request is a ``Conflict``.
    """
    assert p.tenant_id is not None
    digest = request_hash(spec) if key else None
    if key:
        found = _existing(s, p.tenant_id, key, digest or "")
        if found is not None:
            return found, False
    now = time.time()
    row = JobRow(
        tenant_id=p.tenant_id,
        name=spec.name,
        status="queued",
        spec=spec.model_dump(mode="json", exclude={"idempotency_key"}),
        accelerators=spec.accelerators,
        idempotency_key=key,
        request_hash=digest,
        submitted_at=now,
        reason="",
        attempts=0,
        preemptions=0,
        cancel_requested=False,
    )
    s.add(row)
    try:
        s.flush()
    except IntegrityError:
        s.rollback()
        found = _existing(s, p.tenant_id, key or "", digest or "")
        if found is None:
            raise
        return found, False
    s.add(JobEventRow(job_id=row.id, at=now, kind="queued", detail=""))
    s.commit()
    return row, True


def visible_job(s: Session, p: Principal, job_id: int) -> JobRow | None:
    """The job if ``p`` may see it: its tenant's own, or any for an admin."""
    row = s.get(JobRow, job_id)
    if row is None or (not p.is_admin and row.tenant_id != p.tenant_id):
        return None
    return row


def list_jobs(
    s: Session,
    p: Principal,
    status: Sequence[str] = (),
    tenant_id: int | None = None,
    limit: int = 100,
    before: int | None = None,
) -> list[JobRow]:
    q = select(JobRow).order_by(JobRow.id.desc()).limit(limit)
    if not p.is_admin:
        q = q.where(JobRow.tenant_id == p.tenant_id)
    elif tenant_id is not None:
        q = q.where(JobRow.tenant_id == tenant_id)
    if status:
        q = q.where(JobRow.status.in_(list(status)))
    if before is not None:
        q = q.where(JobRow.id < before)
    return list(s.scalars(q))


def tenant_names(s: Session) -> dict[int, str]:
    return {int(i): str(n) for i, n in s.execute(select(TenantRow.id, TenantRow.name))}


def busy_by_flavor(s: Session) -> dict[str, int]:
    """Accelerators held per flavor, as the store records it (open placement intervals)."""
    q = (
        select(AllocationRow.flavor, func.sum(AllocationRow.accelerators))
        .where(AllocationRow.ended_at.is_(None))
        .group_by(AllocationRow.flavor)
    )
    return {str(f): int(n or 0) for f, n in s.execute(q)}
