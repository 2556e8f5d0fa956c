"""Residency in the live pool: ``/v1/residency/route``, ``/audit`` and ``/approvals``.

- ``POST /route`` (any token): where one latency-bound request should run, under the rules and
  approvals the server holds now.
- ``GET /audit`` (a tenant: records of its own jobs; an admin: all, or ``tenant=``): the
  residency check's decisions (one per start, one per rejection) from the store.
- ``GET``/``POST /approvals``, ``DELETE /approvals/{id}`` (admin): approvals on record, stored
  in the database and loaded into the check at once (and at every start-up); a revoked or
  expired approval stops jobs that needed it from being started where it allowed them.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy import String, cast, literal, select

from computepool.admission.residency import ResidencyCheck
from computepool.bounds import ID_MAX, NAME_MAX
from computepool.routing.api import (
    ApprovalIn,
    FieldError,
    RouteIn,
    approval_from,
    approval_out,
    route_one,
)
from computepool.server import residency_store as rs
from computepool.server import store
from computepool.server.app import ApiError
from computepool.server.db import ApprovalRow, AuditRow, JobRow
from computepool.server.routes_admin import Admin
from computepool.server.routes_jobs import ERRORS, Caller, ctx_of

router = APIRouter(prefix="/v1/residency", tags=["residency"], responses=ERRORS)
OUTCOMES = ("allowed", "rejected")


def check_of(request: Request) -> ResidencyCheck:
    check = rs.residency_check(ctx_of(request).service.checks)
    if check is None:
        raise ApiError(
            409,
            "residency",
            "the residency check is off on this server (it runs with --check residency on a "
            "pool that spans jurisdictions)",
        )
    return check


def _latency_model(request: Request):
    model = getattr(request.app.state, "latency_model", None)
    if model is None:
        from computepool.routing.latency import load_latency_model

        model = request.app.state.latency_model = load_latency_model()
    return model


@router.post("/route")
def route(body: RouteIn, request: Request, _caller: Caller) -> dict[str, Any]:
    """The region and flavor that answers one request in time (or the device)."""
    check = check_of(request)
    try:
        return route_one(body, check, _latency_model(request))
    except ValueError as exc:
        field = "source" if "site" in str(exc) else "network" if "network" in str(exc) else "body"
        raise ApiError(422, field, str(exc)) from None


def _job_target():
    return literal("job") + cast(JobRow.id, String)


@router.get("/audit")
def audit(
    request: Request,
    caller: Caller,
    job: Annotated[int | None, Query(ge=1, le=ID_MAX)] = None,
    tenant: Annotated[str | None, Query(max_length=64)] = None,
    rule: Annotated[str | None, Query(max_length=NAME_MAX)] = None,
    outcome: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    before: Annotated[int | None, Query(ge=1, le=ID_MAX)] = None,
) -> list[dict[str, Any]]:
    """Residency decisions, oldest first (the newest ``limit``; ``before``: records with a
    smaller ``seq``). A tenant sees only those of its own jobs."""
    ctx = ctx_of(request)
    if outcome is not None and outcome not in OUTCOMES:
        raise ApiError(422, "outcome", "expected allowed or rejected")
    q = select(AuditRow).where(AuditRow.action.in_([f"residency.{o}" for o in OUTCOMES]))
    with ctx.sessions() as s:
        tenant_id = caller.tenant_id
        if tenant is not None:
            if not caller.is_admin and tenant != caller.tenant:
                raise ApiError(403, "tenant", "a tenant token sees only its own jobs' records")
            t = store.tenant_by_name(s, tenant)
            if t is None:
                raise ApiError(404, "tenant", f"no tenant {tenant!r}")
            tenant_id = t.id
        if tenant_id is not None:  # its jobs' records, and its refused submissions'
            own = select(_job_target()).where(JobRow.tenant_id == tenant_id)
            name = tenant if tenant is not None else caller.tenant
            q = q.where(AuditRow.target.in_(own) | (AuditRow.target == f"submission:{name}"))
        if job is not None:
            q = q.where(AuditRow.target == f"job{job}")
        if outcome is not None:
            q = q.where(AuditRow.action == f"residency.{outcome}")
        if before is not None and before <= ctx.id_max:  # else: every id is smaller
            q = q.where(AuditRow.id < before)
        out: list[dict[str, Any]] = []
        cursor = None
        while len(out) < limit:
            page = q if cursor is None else q.where(AuditRow.id < cursor)
            rows = s.scalars(page.order_by(AuditRow.id.desc()).limit(1000)).all()
            if not rows:
                break
            for r in rows:
                rec = rs.record_of(r)
                if rule is None or _decided_by(rec, rule):
                    rec["seq"] = r.id
                    out.append(rec)
                    if len(out) == limit:
                        break
            cursor = rows[-1].id
    return out[::-1]


def _decided_by(rec: dict[str, Any], rule: str) -> bool:
    return any(
        d == rule or d.startswith(rule + "/") or rule in d.split(":")[-1].split(",")
        for d in rec.get("decided_by", [])
    )


def _approval_doc(row, check: ResidencyCheck) -> dict[str, Any]:
    doc = approval_out(rs.to_approval(row), check.timebase, time.time())
    doc.update(
        created_at=rs.iso(row.created_at),
        created_by=row.created_by,
        revoked_at=None if row.revoked_at is None else rs.iso(row.revoked_at),
        revoked_by=row.revoked_by,
    )
    return doc


@router.get("/approvals")
def approvals(request: Request, _caller: Admin) -> list[dict[str, Any]]:
    """Approvals on record (revoked ones too, with when and by whom)."""
    check = check_of(request)
    with ctx_of(request).sessions() as s:
        return [_approval_doc(r, check) for r in rs.approval_rows(s)]


@router.post("/approvals", status_code=201)
def add_approval(body: ApprovalIn, request: Request, caller: Admin) -> dict[str, Any]:
    """Put an approval on record (kind, scope, validity); admission follows at once."""
    ctx, check = ctx_of(request), check_of(request)
    try:
        a = approval_from(body, check.rulebook, check.timebase)
    except FieldError as exc:
        raise ApiError(422, exc.field, exc.reason) from None
    with ctx.service.write_lock, ctx.sessions() as s:
        if not rs.add_approval(s, a, caller.actor):
            raise ApiError(409, "id", f"approval id {a.id!r} already exists")
        s.commit()
        row = s.get(ApprovalRow, a.id)
        doc = _approval_doc(row, check)
    rs.reload_approvals(check, ctx.sessions)
    ctx.service.wake()
    return doc


@router.delete("/approvals/{approval_id}")
def revoke_approval(
    approval_id: Annotated[str, Path(max_length=NAME_MAX)], request: Request, caller: Admin
) -> dict[str, Any]:
    """Revoke an approval now (it stays on record): jobs that needed it are no longer started
    where it allowed them, and queued jobs left with no legal region are rejected."""
    ctx, check = ctx_of(request), check_of(request)
    with ctx.service.write_lock, ctx.sessions() as s:
        row = rs.revoke_approval(s, approval_id, caller.actor, time.time())
        if row is None:
            raise ApiError(404, "approval_id", f"no approval with id {approval_id!r}")
        s.commit()
        doc = _approval_doc(row, check)
    rs.reload_approvals(check, ctx.sessions)
    ctx.service.wake()
    return doc
