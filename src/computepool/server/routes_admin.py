"""Admin endpoints (pool, tenants, tokens, audit log) and the pool view every caller may read."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy import select

from computepool.bounds import ID_MAX
from computepool.server import store
from computepool.server.app import ApiError
from computepool.server.db import AuditRow
from computepool.server.routes_jobs import ERRORS, Caller, ctx_of, principal
from computepool.server.schemas import QuotaIn, TenantIn, TenantOut, TokenOut, iso


def admin(caller: Annotated[store.Principal, Depends(principal)]) -> store.Principal:
    if not caller.is_admin:
        raise ApiError(403, "authorization", "this needs an admin token")
    return caller


Admin = Annotated[store.Principal, Depends(admin)]
router = APIRouter(prefix="/v1", responses=ERRORS)


def tenant_out(row, handlers: list[str] | None = None) -> TenantOut:
    return TenantOut(
        name=row.name,
        weight=row.weight,
        cohort=row.cohort,
        quotas={k: QuotaIn(**v) for k, v in (row.quotas or {}).items()},
        budget_accel_hours=row.budget_accel_hours,
        budget_usd=row.budget_usd,
        default_max_hours=row.default_max_hours,
        requests_per_s=row.requests_per_s,
        tokens_per_min=row.tokens_per_min,
        handlers=handlers,
        created_at=iso(row.created_at),
    )


@router.get("/pool", tags=["pool"])
def pool(request: Request, caller: Caller) -> dict:
    """Flavors with capacity, accelerators busy with jobs and held by service replicas now;
    the LLM services the caller may use."""
    from computepool.server.gateway import pool_services

    ctx = ctx_of(request)
    svc = ctx.service
    serving = svc.metrics.serving_now
    if svc.role == "leader":
        busy = svc.metrics.busy_now
    else:  # a standby: what the leader recorded (open placement intervals)
        with ctx.sessions() as s:
            busy = store.busy_by_flavor(s)
    return {
        "name": svc.pool.name,
        "flavors": [
            {
                "flavor": f.name,
                "capacity": int(c),
                "busy": busy.get(f.name, 0),
                "services": serving.get(f.name, 0),
            }
            for f, c in zip(svc.pool.flavors, svc.pool.capacity, strict=True)
        ],  # fmt: skip
        "sandbox": svc.sandbox_public(),
        "services": pool_services(ctx.gateway, caller),
    }


@router.post("/tenants", status_code=201, response_model=TenantOut, tags=["admin"])
def put_tenant(body: TenantIn, request: Request, response: Response, caller: Admin) -> TenantOut:
    """Create a tenant, or replace its weight, cohort, quotas and budget (200)."""
    ctx = ctx_of(request)
    flavors = {f.name for f in ctx.service.pool.flavors}
    accels = {f.accelerator for f in ctx.service.pool.flavors}
    regions = {f.region for f in ctx.service.pool.flavors}
    for key in body.quotas:
        ok = key == "*" or key in flavors or key in accels
        ok = ok or (key.endswith("/*") and key[:-2] in regions)
        if not ok:
            raise ApiError(
                422,
                f"quotas.{key}",
                "not a flavor (region/accelerator), accelerator, region/* or *",
            )
    with ctx.sessions() as s:
        try:
            row, created = store.upsert_tenant(s, body, caller.actor)
        except store.Conflict as exc:
            raise ApiError(409, exc.field, exc.reason) from None
        s.commit()
        handlers = store.handlers_of(s, row.id)
    ctx.service.refresh_tenants(force=True)
    ctx.service.wake()  # the next round applies it (jobs it held back may start)
    if not created:
        response.status_code = 200
    return tenant_out(row, handlers)


@router.get("/tenants", response_model=list[TenantOut], tags=["admin"])
def list_tenants(request: Request, _caller: Admin) -> list[TenantOut]:
    with ctx_of(request).sessions() as s:
        return [tenant_out(r, store.handlers_of(s, r.id)) for r in store.tenants(s)]


@router.post("/tenants/{name}/tokens", status_code=201, response_model=TokenOut, tags=["admin"])
def new_token(
    name: Annotated[str, Path(max_length=64)], request: Request, caller: Admin
) -> TokenOut:
    """A new bearer token for a tenant (shown once)."""
    ctx = ctx_of(request)
    with ctx.sessions() as s:
        t = store.tenant_by_name(s, name)
        if t is None:
            raise ApiError(404, "name", f"no tenant {name!r}")
        row, token = store.create_token(s, "tenant", t, caller.actor)
        s.commit()
    return TokenOut(id=row.id, tenant=name, role="tenant", token=token)


@router.delete("/tokens/{token_id}", status_code=204, tags=["admin"])
def revoke(
    token_id: Annotated[int, Path(ge=1, le=ID_MAX)], request: Request, caller: Admin
) -> Response:
    """Revoke a token: refused from the next request on (tokens are not cached)."""
    ctx = ctx_of(request)
    with ctx.sessions() as s:
        if token_id > ctx.id_max or not store.revoke_token(s, token_id, caller.actor):
            raise ApiError(404, "token_id", f"no active token {token_id}")
        s.commit()
    return Response(status_code=204)


@router.get("/audit", tags=["admin"])
def audit(
    request: Request, _caller: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict]:
    with ctx_of(request).sessions() as s:
        rows = s.scalars(select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)).all()
    return [
        {
            "at": iso(r.at),
            "actor": r.actor,
            "action": r.action,
            "target": r.target,
            "detail": r.detail,
        }
        for r in rows
    ]


@router.get("/snapshot", tags=["admin"])
def pool_snapshot(request: Request, _caller: Admin) -> dict:
    """The live pool as it stands (nodes and cordoned ones, tenants with quotas, budgets and
    spending, queued and running jobs with their progress) for ``cpool simulate --from``."""
    from computepool.server.snapshot import snapshot

    ctx = ctx_of(request)
    svc = ctx.service
    cfg = svc.config
    settings = {
        "policy": cfg.policy,
        "placement": cfg.placement,
        "round_seconds": cfg.round_seconds,
    }
    with ctx.sessions() as s, svc.write_lock:
        return snapshot(svc, s, settings)
