"""Tenant endpoints: submit, list, inspect, cancel, logs, usage. A tenant sees only its own jobs."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from computepool.bounds import ID_MAX
from computepool.server import ledger, store, tenancy
from computepool.server.app import ApiError, AppContext
from computepool.server.budget import BudgetExceeded, dearest_price
from computepool.server.db import ACTIVE, FINAL, AllocationRow, JobEventRow, JobRow
from computepool.server.schemas import (
    AllocationOut,
    ErrorOut,
    EventOut,
    JobDetail,
    JobList,
    JobOut,
    JobSpec,
    PendingReason,
    TokenUsageOut,
    UsageOut,
    UsageRow,
    idempotency_key_error,
    iso,
)
from computepool.server.token_meter import token_usage
from computepool.server.validation import submission_errors
from computepool.server.wakeup import notify

ERRORS = {
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    404: {"model": ErrorOut},
    409: {"model": ErrorOut},
    422: {"model": ErrorOut},
}
router = APIRouter(prefix="/v1", tags=["jobs"], responses=ERRORS)
JobId = Annotated[int, Path(ge=1, le=ID_MAX, description="A job's id.")]
#: Ids given as a cursor (``before``): the same range.
Cursor = Annotated[int | None, Query(ge=1, le=ID_MAX)]
Tenant = Annotated[str | None, Query(max_length=64)]
STATUSES = (*ACTIVE, *FINAL)


def ctx_of(request: Request) -> AppContext:
    return request.app.state.ctx


async def principal(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> store.Principal:
    """The caller behind the bearer token (checked against the store on every request)."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise ApiError(401, "authorization", "missing 'Authorization: Bearer <token>' header")
    ctx, token = ctx_of(request), authorization[7:].strip()
    if ctx.lookup_is_remote:  # a PostgreSQL round trip: not on the event loop
        p = await run_in_threadpool(ctx.principal, token)
    else:
        p = ctx.principal(token)
    if p is None:
        raise ApiError(401, "authorization", "unknown or revoked token")
    return p


Caller = Annotated[store.Principal, Depends(principal)]


def job_out(ctx: AppContext, row: JobRow, with_spec: bool = False) -> JobOut:
    """The API view of a stored job (built without re-validation: the store's values)."""
    return JobOut.model_construct(
        id=row.id,
        tenant=ctx.tenant_name(row.tenant_id),
        name=row.name,
        status=row.status,
        accelerators=row.accelerators,
        flavor=row.flavor,
        submitted_at=iso(row.submitted_at),
        started_at=iso(row.started_at),
        finished_at=iso(row.finished_at),
        reason=row.reason or "",
        exit_code=row.exit_code,
        attempts=row.attempts or 0,
        preemptions=row.preemptions or 0,
        cancel_requested=bool(row.cancel_requested),
        spec=row.spec if with_spec else None,
    )


@router.post("/jobs", status_code=201, response_model=JobOut)
async def submit(
    spec: JobSpec,
    request: Request,
    caller: Caller,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Response:
    """Submit a job. With an idempotency key (header or body), a retry returns the same job."""
    ctx = ctx_of(request)
    warnings = spec.warnings  # old field names it used (read as the new ones)
    if caller.tenant_id is None:
        raise ApiError(403, "authorization", "admin tokens own no jobs; use a tenant's token")
    why = None if idempotency_key is None else idempotency_key_error(idempotency_key)
    if why:
        raise ApiError(422, "Idempotency-Key", f"header {why}")
    key = idempotency_key or spec.idempotency_key
    if idempotency_key and spec.idempotency_key and idempotency_key != spec.idempotency_key:
        raise ApiError(422, "idempotency_key", "differs from the Idempotency-Key header")
    try:  # its datasets' handlers must be its own (an empty one becomes its name)
        owned: list[str] = []
        if tenancy.foreign_handlers(spec, caller.tenant or ""):
            owned = await asyncio.to_thread(tenancy.owned_handlers, ctx.sessions, caller.tenant_id)
        spec = tenancy.own_datasets(spec, caller.tenant or "", owned)
        errors = submission_errors(spec, ctx.service.feasibility, ctx.service.checks)
    except tenancy.NotOwned as exc:
        errors, status = [(exc.field, exc.reason)], 403
    else:
        status = 422
    if errors:
        field, reason = errors[0]
        if field.startswith("datasets"):  # refused for its data: the residency audit says so
            await asyncio.to_thread(_audit_refusal, ctx, caller, spec, field, reason)
        raise ApiError(status, field, reason)
    if caller.tenant in ctx.service.over_budget:
        raise ApiError(403, "tenant", f"tenant {caller.tenant!r} has used up its budget")
    price = dearest_price(spec, ctx.service.feasibility)
    try:
        row, created = await asyncio.wrap_future(ctx.writer.submit(caller, spec, key, price))
    except store.Conflict as exc:
        raise ApiError(409, exc.field, exc.reason) from None
    except BudgetExceeded as exc:
        raise ApiError(exc.status, exc.field, exc.reason) from None
    if created:
        ctx.service.metrics.submitted(caller.tenant or "")
        ctx.service.wake()
    # the hot path: serialise once (returning the model would validate it a second time)
    body = job_out(ctx, row).model_dump_json()
    if warnings:  # said in the answer too: a job file read through the API has no stderr
        body = body[:-1] + ',"warnings":' + json.dumps(warnings) + "}"
    return Response(
        body, status_code=201 if created else 200, media_type="application/json",
    )  # fmt: skip


def _audit_refusal(
    ctx: AppContext, caller: store.Principal, spec: JobSpec, field: str, reason: str
) -> None:
    svc = ctx.service
    rule = tenancy.decided_by_of(field, reason, svc.checks, spec, svc.pool)
    rec = tenancy.refusal_record(caller.tenant or "", spec, field, reason, rule, time.time())
    tenancy.write_refusal(ctx.sessions, svc.write_lock, rec)


@router.get("/jobs", response_model=JobList)
def jobs(
    request: Request,
    caller: Caller,
    status: Annotated[list[str], Query(max_length=len(STATUSES))] = [],  # noqa: B006
    tenant: Tenant = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Cursor = None,
) -> JobList:
    """Jobs, newest first: the caller's tenant's own (an admin may pass ``tenant``)."""
    ctx = ctx_of(request)
    unknown = [x for x in status if x not in STATUSES]
    if unknown:
        raise ApiError(422, "status", f"unknown status; use any of {', '.join(STATUSES)}")
    if before is not None and before > ctx.id_max:
        before = None  # every id this store can hold is smaller
    tenant_id = None
    with ctx.sessions() as s:
        if tenant is not None:
            if not caller.is_admin and tenant != caller.tenant:
                raise ApiError(403, "tenant", "a tenant token lists only its own jobs")
            t = store.tenant_by_name(s, tenant)
            if t is None:
                raise ApiError(404, "tenant", f"no tenant {tenant!r}")
            tenant_id = t.id
        rows = store.list_jobs(s, caller, status, tenant_id, limit, before)
    return JobList(jobs=[job_out(ctx, r) for r in rows])


def visible_or_404(ctx: AppContext, caller: store.Principal, job_id: int) -> JobRow:
    if job_id > ctx.id_max:  # beyond what the store's id column holds: no such job
        raise ApiError(404, "id", f"no job {job_id}")
    with ctx.sessions() as s:
        row = store.visible_job(s, caller, job_id)
    if row is None:
        raise ApiError(404, "id", f"no job {job_id}")
    return row


@router.get("/jobs/{job_id}", response_model=JobDetail)
def job(job_id: JobId, request: Request, caller: Caller) -> JobDetail:
    """One job with its lifecycle events and placement intervals."""
    ctx = ctx_of(request)
    row = visible_or_404(ctx, caller, job_id)
    with ctx.sessions() as s:
        events = s.scalars(
            select(JobEventRow).where(JobEventRow.job_id == job_id).order_by(JobEventRow.id)
        ).all()
        allocs = s.scalars(
            select(AllocationRow).where(AllocationRow.job_id == job_id).order_by(AllocationRow.id)
        ).all()
    base = job_out(ctx, row, with_spec=True).model_dump()
    pending = None
    if row.status not in FINAL and row.status != "running":
        st = ctx.service.pending_reason(job_id)
        if st is not None:
            pending = PendingReason(code=st.code.value, source=st.source, reason=st.reason)
    return JobDetail(
        **base,
        pending_reason=pending,
        events=[EventOut(at=iso(e.at), kind=e.kind, detail=e.detail) for e in events],
        allocations=[
            AllocationOut(
                attempt=a.attempt,
                flavor=a.flavor,
                accelerators=a.accelerators,
                workers=a.workers,
                started_at=iso(a.started_at),
                ended_at=iso(a.ended_at),
                end_reason=a.end_reason,
            )
            for a in allocs
        ],
    )


@router.post("/jobs/{job_id}/cancel", status_code=202, response_model=JobOut)
def cancel(job_id: JobId, request: Request, caller: Caller) -> JobOut:
    """Ask for a job to be cancelled; its workers get SIGTERM, then SIGKILL after the grace."""
    ctx = ctx_of(request)
    with ctx.sessions() as s:
        row = None if job_id > ctx.id_max else store.visible_job(s, caller, job_id)
        if row is None:
            raise ApiError(404, "id", f"no job {job_id}")
        if row.status in FINAL:
            raise ApiError(409, "status", f"job {job_id} is already {row.status}")
        row.cancel_requested = True
        store.audit(s, caller.actor, "job.cancel", f"job{job_id}")
        notify(s)  # the leader may be another server
        s.commit()
    ctx.service.wake()
    return job_out(ctx, row)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def parse_since(text: str | None, now: float) -> float | None:
    """An ISO 8601 time, or a duration back from now (``90m``, ``24h``, ``7d``)."""
    if text is None:
        return None
    m = _DURATION.match(text)
    if m:
        return now - float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ApiError(
            422, "since", "expected an ISO 8601 time or a duration like 90m, 24h, 7d"
        ) from None


@router.get("/usage", response_model=UsageOut)
def usage(
    request: Request,
    caller: Caller,
    tenant: Tenant = None,
    since: Annotated[str | None, Query(max_length=64)] = None,
) -> UsageOut:
    """Accelerator-hours, energy, cost and carbon per tenant and flavor, and tokens through
    the gateway per tenant, service and model (a tenant: its own)."""
    ctx = ctx_of(request)
    now = time.time()
    t0 = parse_since(since, now)
    gw = ctx.gateway
    if gw is not None and gw.meter.pending():  # read your own tokens: not a second late
        gw.flush(ctx.sessions, ctx.service.write_lock)
    with ctx.sessions() as s:
        tenant_id = caller.tenant_id
        if caller.is_admin:
            tenant_id = None
            if tenant is not None:
                t = store.tenant_by_name(s, tenant)
                if t is None:
                    raise ApiError(404, "tenant", f"no tenant {tenant!r}")
                tenant_id = t.id
        elif tenant is not None and tenant != caller.tenant:
            raise ApiError(403, "tenant", "a tenant token sees only its own usage")
        rows = ledger.usage(s, ctx.service.pool, tenant_id, t0, now)
        tokens = token_usage(s, tenant_id, t0)
    out = [
        UsageRow(
            tenant=u.tenant,
            flavor=u.flavor,
            accelerator_hours=u.accel_seconds / 3600.0,
            energy_kwh=u.energy_kwh,
            cost_usd=u.cost_usd,
            carbon_kg=u.carbon_kg,
            jobs=u.jobs,
        )
        for u in rows
    ]
    total = UsageRow(
        tenant="*",
        flavor="*",
        accelerator_hours=sum(r.accelerator_hours for r in out),
        energy_kwh=sum(r.energy_kwh for r in out),
        cost_usd=sum(r.cost_usd for r in out),
        carbon_kg=sum(r.carbon_kg for r in out),
        jobs=sum(r.jobs for r in out),
    )
    return UsageOut(
        since=iso(t0),
        until=iso(now),
        rows=out,
        total=total,
        tokens=[
            TokenUsageOut(
                tenant=t.tenant,
                service=t.service,
                model=t.model,
                requests=t.requests,
                prompt_tokens=t.prompt_tokens,
                completion_tokens=t.completion_tokens,
                estimated_requests=t.estimated,
                cost_usd=t.cost_usd,
            )
            for t in tokens
        ],
    )
