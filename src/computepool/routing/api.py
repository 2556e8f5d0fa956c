"""HTTP endpoints for routing and residency, and the request/answer shapes they share.

``residency_router(check, latency_model)`` serves ``POST /route`` (one request: where should
it run), ``GET /audit`` (placement decisions), ``GET``/``POST /approvals`` (list, add with
expiry) and ``DELETE /approvals/{id}`` (revoke now) over one in-memory ``ResidencyCheck``
(e.g. next to a simulation); an approval added here changes admission at the next round.

The live server (``cpool serve``) serves the same endpoints under ``/v1/residency`` with its
token auth, the store behind approvals and audit records (``server/routes_residency.py``);
both use ``approval_from``, ``approval_out`` and ``route_one`` from here.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import Field

from computepool import bounds as B
from computepool.admission.approvals import Approval, TimeBase, parse_approvals
from computepool.admission.residency import ResidencyCheck
from computepool.admission.rulebook import Rulebook, RulebookError
from computepool.bounds import BoundedModel
from computepool.model.dataset_spec import DatasetSpec
from computepool.routing.latency import LatencyModel, Request, route

Short = Annotated[str, Field(max_length=B.SHORT_MAX)]
Name = Annotated[str, Field(max_length=B.NAME_MAX)]


class DatasetIn(DatasetSpec):
    """A dataset a routing request reads (named ``request`` when unnamed)."""

    name: Name = "request"


class RouteIn(BoundedModel):
    source: str = Field(max_length=256, description="site name or 'LAT,LON[,JURISDICTION]'")
    deadline_ms: float = Field(gt=0, le=1e9)
    work_h100_ms: float = Field(gt=0, le=1e12)
    network: Short = "5g"
    data: list[DatasetIn] = Field([], max_length=B.DATASETS_MAX)
    stacks: list[Short] = Field([], max_length=B.STACKS_MAX)
    prefer: Literal["latency", "cost"] = "latency"


class ApprovalIn(BoundedModel):
    """An approval on record: kind, scope (``*`` = any), validity (ISO dates or times)."""

    id: str = Field(min_length=1, max_length=B.NAME_MAX)
    kind: Short
    handler: Name = "*"
    origin: Short = "*"
    data_class: Short = "*"
    to: list[Short] = Field(["*"], max_length=64)
    datasets: list[Name] = Field([], max_length=1024)
    valid_from: datetime | None = None
    expires: datetime | None = None
    note: str = Field("", max_length=B.STR_MAX)


class FieldError(ValueError):
    """A request field is wrong: ``field`` and ``reason`` (a 422)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def approval_from(body: ApprovalIn, rulebook: Rulebook, timebase: TimeBase) -> Approval:
    """The approval a request asks for, checked as an approvals file is (``FieldError``)."""
    try:
        book = parse_approvals({"approvals": [body.model_dump()]}, rulebook, timebase)
    except RulebookError as exc:
        field, reason = exc.problems[0]
        raise FieldError(field.removeprefix("approvals[0]."), reason) from None
    return book.approvals[0]


def approval_out(a: Approval, timebase: TimeBase, now: float) -> dict[str, Any]:
    tb = timebase

    def when(t: float) -> str | None:
        return tb.to_datetime(t).isoformat() if math.isfinite(t) else None

    return {
        "id": a.id,
        "kind": a.kind,
        "handler": a.handler,
        "origin": a.origin,
        "data_class": a.data_class,
        "to": list(a.to),
        "datasets": list(a.datasets),
        "valid_from": when(a.valid_from),
        "expires": when(a.expires),
        "active": a.active(now),
        "note": a.note,
    }


def route_one(body: RouteIn, check: ResidencyCheck, model: LatencyModel) -> dict[str, Any]:
    """The ``/route`` answer as a plain dict (also used by ``cpool route --json``)."""
    pool = check.pool
    if pool is None:
        raise ValueError("the residency check has no pool")
    data = tuple(d.dataset() for d in body.data)
    verdicts = check.region_verdicts(data, pool) if data else {}
    legal = [verdicts[f.region].allowed if data else True for f in pool.flavors]
    rules = [
        (
            (",".join(verdicts[f.region].allowed_by) or "-")
            if data and verdicts[f.region].allowed
            else (verdicts[f.region].forbidden_by if data else "-")
        )
        for f in pool.flavors
    ]
    model.access_ms(body.network)  # raises on an unknown network
    req = Request(
        model.site(body.source),
        body.deadline_ms,
        body.work_h100_ms,
        body.network,
        data,
        tuple(body.stacks),
    )
    r = route(req, pool, model, legal, rules, prefer=body.prefer)
    return {
        "target": r.target,
        "edge": r.on_edge,
        "total_ms": r.total_ms,
        "reason": r.reason,
        "options": [o.__dict__ for o in r.options],
    }


def residency_router(check: ResidencyCheck, model: LatencyModel) -> APIRouter:
    router = APIRouter(tags=["residency"])

    @router.post("/route")
    def post_route(body: RouteIn) -> dict[str, Any]:
        try:
            return route_one(body, check, model)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None

    @router.get("/audit")
    def get_audit(job: str | None = None, rule: str | None = None, limit: int = 1000) -> list[dict]:
        out = []
        for rec in check.audit.records():
            if job is not None and rec["job"] != job:
                continue
            if rule is not None and not any(rule in d for d in rec["decided_by"]):
                continue
            out.append(rec)
        return out[-limit:]

    @router.get("/approvals")
    def get_approvals() -> list[dict]:
        return [approval_out(a, check.timebase, check.now) for a in check.approvals.approvals]

    @router.post("/approvals", status_code=201)
    def post_approval(body: ApprovalIn) -> dict[str, Any]:
        try:
            a = approval_from(body, check.rulebook, check.timebase)
        except FieldError as exc:
            raise HTTPException(422, str(exc)) from None
        try:
            check.add_approval(a)
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
        return approval_out(a, check.timebase, check.now)

    @router.delete("/approvals/{approval_id}")
    def delete_approval(approval_id: str) -> dict[str, Any]:
        try:
            check.revoke_approval(approval_id)
        except KeyError:
            raise HTTPException(404, f"no approval with id {approval_id!r}") from None
        a = next(x for x in check.approvals.approvals if x.id == approval_id)
        return approval_out(a, check.timebase, check.now)

    return router
